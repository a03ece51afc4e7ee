"""Pipelines built from the stages of installed plugins, driven through the fresh venv's ``stagekit``.

The pipeline spans two distributions: stagekit-itest-alpha (a regular install) makes and doubles numbers,
stagekit-itest-beta (an editable install) sums them and writes a report file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from freshenv import FreshEnv, imported

pytestmark = pytest.mark.xdist_group("install")

REPORT_PIPELINE = """\
[pipeline]
targets = ["beta_report"]

[artifacts]
out = "report.txt"

[params.alpha_numbers]
count = 3
"""
ORDER = ["alpha_numbers", "alpha_double", "beta_total", "beta_report"]


def write(tmp_path: Path, text: str, name: str = "pipeline.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("executor", ["sequential", "thread", "process"])
def test_run_a_pipeline_across_two_installed_distributions(fresh: FreshEnv, tmp_path: Path, import_log: Path,
                                                           executor: str) -> None:
    write(tmp_path, REPORT_PIPELINE)
    summary = fresh.stagekit_json("run", "pipeline.toml", "--executor", executor, cwd=tmp_path,
                                  SKT_IMPORT_LOG=str(import_log))
    assert summary["ok"] is True
    assert summary["executor"] == executor
    assert [s["name"] for s in summary["stages"]] == ORDER
    assert {s["name"]: s["plugin"] for s in summary["stages"]} == {
        "alpha_numbers": "alpha", "alpha_double": "alpha", "beta_total": "beta", "beta_report": "beta"}
    assert {s["status"] for s in summary["stages"]} == {"ok"}
    assert set(summary["artifacts"]) >= {"out", "numbers", "doubled", "total", "report"}
    # numbers 1..3 (the pipeline file's param), doubled 2, 4, 6: total 12
    assert (tmp_path / "report.txt").read_text(encoding="utf-8") == "3 numbers, doubled total 12\n"
    # the lazily named stage function was imported to run (in the driver, or in a worker process)
    if executor != "process":
        assert "skt_alpha.work" in imported(import_log)


def test_run_prints_a_summary_table_for_people(fresh: FreshEnv, tmp_path: Path) -> None:
    write(tmp_path, REPORT_PIPELINE)
    proc = fresh.stagekit("run", "pipeline.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["stage", "plugin", "status", "time", "provided"]
    assert [line.split()[0] for line in lines[2:6]] == ORDER
    assert all(line.split()[2] == "ok" for line in lines[2:6])
    assert "4/4 stages ok" in lines[-1]
    assert "(sequential)" in lines[-1]


def test_graph_of_installed_stages(fresh: FreshEnv, tmp_path: Path) -> None:
    write(tmp_path, REPORT_PIPELINE)
    mermaid = fresh.stagekit("graph", "pipeline.toml", cwd=tmp_path)
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid.stdout.splitlines()[0] == "flowchart LR"
    assert "n_alpha_numbers -- numbers --> n_alpha_double" in mermaid.stdout
    assert "n_beta_total -- total --> n_beta_report" in mermaid.stdout
    assert "inputs -- out --> n_beta_report" in mermaid.stdout

    dot = fresh.stagekit("graph", "pipeline.toml", "--format", "dot", cwd=tmp_path).stdout
    assert dot.startswith("digraph pipeline {") and dot.rstrip().endswith("}")
    assert '"alpha_double" -> "beta_total" [label="doubled"];' in dot

    described = json.loads(fresh.stagekit("graph", "pipeline.toml", "--format", "json", cwd=tmp_path).stdout)
    assert [s["name"] for s in described["stages"]] == ORDER
    assert described["initial"] == ["out"]
    assert {s["name"]: s["plugin"] for s in described["stages"]}["beta_total"] == "beta"


def test_check_passes_and_fails_with_the_problems(fresh: FreshEnv, tmp_path: Path) -> None:
    write(tmp_path, REPORT_PIPELINE)
    ok = fresh.stagekit("check", "pipeline.toml", cwd=tmp_path)
    assert (ok.returncode, ok.stdout.strip()) == (0, "pipeline.toml: OK (4 stages)")

    write(tmp_path, REPORT_PIPELINE.replace('out = "report.txt"', 'other = 1'), "missing.toml")
    bad = fresh.stagekit("check", "missing.toml", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stdout == ""
    head, *problems = bad.stderr.strip().splitlines()
    assert head.startswith("missing.toml: ") and "problem" in head
    assert any("'beta_report'" in p and "'out'" in p for p in problems), bad.stderr
    assert not (tmp_path / "report.txt").exists()  # check runs nothing


def test_a_failing_installed_stage_is_one_short_error(fresh: FreshEnv, tmp_path: Path) -> None:
    write(tmp_path, '[pipeline]\ntargets = ["alpha_explode"]\n')
    proc = fresh.stagekit("run", "pipeline.toml", cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("stagekit: error: ")
    for fragment in ("'alpha_explode'", "'alpha'", "ValueError", "alpha_explode refuses 5 numbers"):
        assert fragment in lines[0], (fragment, lines[0])
    assert "skt_alpha" in lines[1] and "plugin.py" in lines[1] and "--traceback" in lines[1]

    full = fresh.stagekit("--traceback", "run", "pipeline.toml", cwd=tmp_path)
    assert full.returncode == 1
    assert "Traceback (most recent call last)" in full.stderr
    assert 'raise ValueError(f"alpha_explode refuses' in full.stderr  # the plugin's own source line

    partial = fresh.stagekit("run", "pipeline.toml", "--json", cwd=tmp_path)
    assert partial.returncode == 1
    summary = json.loads(partial.stdout)  # what completed before the failure is still reported
    assert summary["ok"] is False
    status = {s["name"]: s["status"] for s in summary["stages"]}
    assert status == {"alpha_numbers": "ok", "alpha_explode": "failed"}
    assert "numbers" in summary["artifacts"]


def test_a_pipeline_naming_a_blocked_plugins_stage_says_so(fresh: FreshEnv, tmp_path: Path) -> None:
    write(tmp_path, REPORT_PIPELINE)
    proc = fresh.stagekit("--disable", "beta", "check", "pipeline.toml", cwd=tmp_path)
    assert proc.returncode == 1  # check lists it as a problem of the pipeline
    assert "Traceback" not in proc.stderr
    assert "unknown stage 'beta_report'" in proc.stderr


def test_strict_plugins_stops_a_run_before_any_stage(fresh: FreshEnv, tmp_path: Path) -> None:
    write(tmp_path, REPORT_PIPELINE)
    proc = fresh.stagekit("run", "pipeline.toml", plugins=["broken"], cwd=tmp_path,
                          STAGEKIT_STRICT_PLUGINS="1")
    assert proc.returncode == 2
    assert "plugin 'broken'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "report.txt").exists()
    # without strict mode the broken plugin is reported by `stagekit plugins` and the run goes on
    assert fresh.stagekit("run", "pipeline.toml", plugins=["broken"], cwd=tmp_path).returncode == 0
    assert (tmp_path / "report.txt").exists()
