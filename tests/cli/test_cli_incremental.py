"""Incremental runs from the command line: a pipeline file in a workspace, run again and again through
``stagekit.cli.main`` (and once as a real ``python -m stagekit.cli`` process), against a real run store.

The stages come from a real distribution on disk (a module and its ``*.dist-info`` on sys.path, allowed with
``STAGEKIT_PLUGINS``), so that their code, and so their fingerprints, are those of files: the same in a
subprocess as in this one. The chain is prices -> returns -> stats -> summary; ``make_prices`` sleeps a
little, so that reusing it saves measurable time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stagekit.cli import main

PLUGIN_MODULE = "skt_incremental_fixture"
PLUGIN_SOURCE = '''\
"""prices -> returns -> stats -> summary."""

import time

from stagekit import hookimpl, stage


@stage(provides=["prices"], params={"n": 8})
def make_prices(n):
    time.sleep(0.05)
    return [100.0 + i for i in range(n)]


@stage(requires=["prices"], provides=["returns"])
def returns(prices):
    return [round(b / a - 1, 12) for a, b in zip(prices, prices[1:])]


@stage(requires=["returns"], provides=["stats"], params={"top_n": 2}, tags=["model"])
def stats(returns, top_n):
    return {"mean": sum(returns) / len(returns), "top": sorted(returns)[-top_n:]}


@stage(requires=["stats"], provides=["summary"], tags=["model"])
def summarize(stats):
    return f"mean {stats['mean']:.6f}"


@hookimpl
def stagekit_register_stages(register):
    for s in (make_prices, returns, stats, summarize):
        register(s)
'''
PIPELINE = '[pipeline]\nname = "chain"\ntargets = ["summarize"]\n'
STAGES = ["make_prices", "returns", "stats", "summarize"]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The fixture plugin as an installed distribution, in a folder to put on sys.path."""
    site = tmp_path / "site"
    info = site / f"{PLUGIN_MODULE}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (site / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: skt-incremental-fixture\nVersion: 0.1.0\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[stagekit]\nincfix = {PLUGIN_MODULE}\n", encoding="utf-8")
    return site


@pytest.fixture
def project(ws: Any, site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The workspace (``ws``, initialised) as the working directory, holding ``p.toml``; only the fixture
    plugin loads."""
    monkeypatch.syspath_prepend(str(site))
    for var in ("STAGEKIT_DISABLE", "STAGEKIT_STRICT_PLUGINS", "STAGEKIT_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STAGEKIT_PLUGINS", "incfix")
    monkeypatch.chdir(ws.root)
    (ws.root / "p.toml").write_text(PIPELINE, encoding="utf-8")
    yield ws.root
    sys.modules.pop(PLUGIN_MODULE, None)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = cli(capsys, "run", "p.toml", "--json", *argv)
    assert code == 0, err
    summary: dict[str, Any] = json.loads(out)
    return summary


def statuses(summary: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in summary["stages"]}


def explained(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, Any]]:
    code, out, err = cli(capsys, "explain", "p.toml", "--json", *argv)
    assert code == 0, err
    return {d["stage"]: d for d in json.loads(out)["stages"]}


def rows(out: str) -> dict[str, list[str]]:
    """A table printed by the CLI, by its first column (the lines after the header and its rule)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("--")) + 1
    found = {}
    for line in lines[start:]:
        if not line.strip():
            break
        found[line.split()[0]] = re.split(r"\s{2,}", line.strip())
    return found


# --- run twice ----------------------------------------------------------------------------------------------


def test_the_second_run_shows_every_stage_cached_with_the_time_it_saved(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "run", "p.toml")
    assert code == 0, err
    first = rows(out)
    assert [first[s][2] for s in STAGES] == ["ok"] * 4
    assert all(first[s][-1] == "no earlier run" for s in STAGES)  # the reason column
    first_id = out.strip().splitlines()[-1].split()[1].rstrip(":")

    code, out, err = cli(capsys, "run", "p.toml")
    assert code == 0, err
    second = rows(out)
    for name in STAGES:
        assert re.fullmatch(r"cached \(saved \d+(\.\d+)? (ms|s)\)", second[name][2]), second[name]
        assert second[name][-1] == f"cached from run {first_id}"
    saved = re.search(r"cached \(saved (\d+(?:\.\d+)?) ms\)", second["make_prices"][2])
    assert saved is not None and float(saved.group(1)) >= 50  # it sleeps 50 ms
    last = out.strip().splitlines()[-1]
    assert "4/4 stages ok (0 ran, 4 cached, saved " in last, last


def test_the_json_summary_carries_the_reason_and_the_time_saved(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run_json(capsys)
    assert [(s["status"], s["reason"], s["saved"]) for s in first["stages"]] == [("ok", "no earlier run", 0)] * 4
    second = run_json(capsys)
    assert statuses(second) == dict.fromkeys(STAGES, "cached")
    by = {s["name"]: s for s in second["stages"]}
    assert by["make_prices"]["saved"] >= 0.05
    assert by["make_prices"]["reason"] == f"cached from run {first['run_id']}"


def test_no_cache_runs_everything_and_records_it(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys)
    assert statuses(run_json(capsys, "--no-cache")) == dict.fromkeys(STAGES, "ok")
    assert statuses(run_json(capsys)) == dict.fromkeys(STAGES, "cached")  # what --no-cache stored is reused
    assert set(explained(capsys, "--no-cache")[s]["action"] for s in STAGES) == {"run"}


def test_rerun_runs_that_stage_and_what_follows_stays_cached_when_its_outputs_are_the_same(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys)
    plan = explained(capsys, "--rerun", "returns")
    assert plan["make_prices"]["action"] == "cached"
    assert (plan["returns"]["action"], plan["returns"]["reason"]) == ("run", "asked to run again (--rerun)")
    # explain cannot know that returns makes the same again: what follows is expected to run
    assert (plan["stats"]["action"], plan["stats"]["reason"]) == ("run", "upstream 'returns' runs")
    summary = run_json(capsys, "--rerun", "returns")
    assert statuses(summary) == {"make_prices": "cached", "returns": "ok", "stats": "cached", "summarize": "cached"}
    both = run_json(capsys, "--rerun", "make_prices,stats")  # a comma list
    assert statuses(both) == {"make_prices": "ok", "returns": "cached", "stats": "ok", "summarize": "cached"}


def test_rerun_of_an_unknown_stage_names_the_close_ones(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys)
    for command in ("run", "explain"):
        code, out, err = cli(capsys, command, "p.toml", "--rerun", "retrns")
        assert (code, out) == (1, "")
        head, problem = err.strip().splitlines()
        assert head.startswith("p.toml: 1 problem(s)")
        assert problem == "  - --rerun 'retrns': unknown stage 'retrns' (did you mean 'returns'?) in this run"


def test_a_param_change_runs_that_stage_and_what_is_downstream(project: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys)
    code, out, err = cli(capsys, "explain", "p.toml", "--param", "stats.top_n=3")
    assert code == 0, err
    table = rows(out)
    assert table["stats"][1:3] == ["run", "param top_n 2 → 3"]
    assert [table[s][1] for s in ("make_prices", "returns")] == ["cached", "cached"]
    assert table["summarize"][1] == "run" and "stats" in table["summarize"][2]  # its input changed
    assert out.strip().splitlines()[-1].startswith("2 of 4 stages would run; 2 cached (saves ")
    summary = run_json(capsys, "--param", "stats.top_n=3")
    assert statuses(summary) == {"make_prices": "cached", "returns": "cached", "stats": "ok", "summarize": "ok"}
    assert {s["name"]: s["reason"] for s in summary["stages"]}["stats"] == "param top_n 2 → 3"
    assert set(a["action"] for a in explained(capsys, "--param", "stats.top_n=3").values()) == {"cached"}


def test_explain_runs_nothing_and_records_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stagekit.store.rundb import RunDatabase

    code, out, err = cli(capsys, "explain", "p.toml")
    assert code == 0, err
    assert {s: r[1:3] for s, r in rows(out).items()} == {
        "make_prices": ["run", "no earlier run"], "returns": ["run", "upstream 'make_prices' runs"],
        "stats": ["run", "upstream 'returns' runs"], "summarize": ["run", "upstream 'stats' runs"]}
    assert out.strip().splitlines()[-1] == "4 of 4 stages would run; none cached"
    assert RunDatabase.in_workspace(project).runs() == []
    run_json(capsys)
    plan = json.loads(cli(capsys, "explain", "p.toml", "--json")[1])
    assert (plan["pipeline"], plan["run"], plan["cached"], plan["missing"]) == ("chain", 0, 4, 0)
    assert plan["saved"] >= 0.05 and plan["workspace"] == str(project)
    assert len(RunDatabase.in_workspace(project).runs()) == 1


# --- selection ---------------------------------------------------------------------------------------------


def test_from_and_to_select_downstream_and_upstream(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys)
    # what the selection needs and does not make comes from the store: its stages show as cached
    downstream = run_json(capsys, "--from", "stats", "--no-cache")
    assert statuses(downstream) == {"make_prices": "cached", "returns": "cached", "stats": "ok", "summarize": "ok"}
    upstream = run_json(capsys, "--to", "returns", "--no-cache")
    assert statuses(upstream) == {"make_prices": "ok", "returns": "ok"}
    between = run_json(capsys, "--from", "returns", "--to", "stats", "--rerun", "returns")
    assert statuses(between) == {"make_prices": "cached", "returns": "ok", "stats": "cached"}
    plan = explained(capsys, "--from", "returns", "--no-cache")
    assert {s: d["action"] for s, d in plan.items()} == {"make_prices": "cached", "returns": "run", "stats": "run",
                                                         "summarize": "run"}


def test_stages_and_tags_replace_the_files_selection(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys)
    selected = run_json(capsys, "--stages", "returns,stats", "--no-cache")
    assert statuses(selected) == {"make_prices": "cached", "returns": "ok", "stats": "ok"}  # prices: stored
    tagged = run_json(capsys, "--tags", "model", "--no-cache")
    assert statuses(tagged) == {"make_prices": "cached", "returns": "cached", "stats": "ok", "summarize": "ok"}
    code, out, err = cli(capsys, "check", "p.toml", "--stages", "returns", "--stages", "stats")
    assert (code, out.strip()) == (0, "p.toml: OK (2 stages; from the run store: make_prices)"), err


def test_a_missing_input_is_refused_naming_the_stage_and_explain_names_the_artifact(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "check"):  # nothing ran yet: no stored prices
        code, out, err = cli(capsys, command, "p.toml", "--from", "returns")
        assert (code, out) == (1, ""), (command, out, err)
        head, problem = err.strip().splitlines()
        assert head == "p.toml: 1 problem(s)" + ("; nothing was run" if command == "run" else "")
        assert problem.startswith("  - 'prices' must come from the run store (stage 'make_prices'")
        assert "no earlier run" in problem
    code, out, err = cli(capsys, "explain", "p.toml", "--from", "returns")
    assert (code, err) == (1, "")
    assert rows(out)["make_prices"][1:3] == [
        "missing", "not selected, and 'prices' not stored for the current inputs (no earlier run)"]
    assert out.strip().splitlines()[-1] == ("3 of 4 stages would run; none cached; 1 missing (make_prices): the run "
                                            "would stop before any stage runs")
    from stagekit.store.rundb import RunDatabase

    assert RunDatabase.in_workspace(project).runs() == []  # refused before any stage ran


# --- looking back --------------------------------------------------------------------------------------------


def test_runs_show_says_why_each_stage_ran_and_what_the_cached_ones_saved(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run_json(capsys)["run_id"]
    run_json(capsys, "--param", "stats.top_n=3")
    code, out, err = cli(capsys, "runs", "show", "latest")
    assert code == 0, err
    assert out.splitlines()[8].split() == ["STAGE", "PLUGIN", "STATUS", "TIME", "SAVED", "REASON", "ERROR"]
    table = rows(out)
    assert table["make_prices"][2:] == ["cached", "-", table["make_prices"][4], f"cached from run {first}"]
    assert re.fullmatch(r"0\.\d\d s", table["make_prices"][4])
    assert table["stats"][2] == "ok" and table["stats"][5] == "param top_n 2 → 3"
    assert out.strip().splitlines()[-1].startswith("4 stages: 2 ran, 2 cached (saved ")
    code, out, _ = cli(capsys, "runs", "show", first, "--json")
    assert [(s["stage"], s["reason"], s["saved"]) for s in json.loads(out)["stage_runs"]] == [
        (s, "no earlier run", 0) for s in STAGES]


def test_the_report_shows_cached_stages(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys)
    code, _, err = cli(capsys, "run", "p.toml", "--report", "r.html", "--param", "stats.top_n=3")
    assert code == 0, err
    page = (project / "r.html").read_text(encoding="utf-8")
    assert '<span class="badge s-cached">2 cached</span>' in page
    assert 'data-stage="make_prices" data-status="cached"' in page and "cached · saved " in page
    assert "param top_n 2 → 3" in page


def test_a_real_process_run_twice_reuses_the_first(project: Path, site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "STAGEKIT_PLUGINS": "incfix"}

    def stagekit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "stagekit.cli", *args], cwd=project, env=env,
                              capture_output=True, text=True, timeout=120)

    first = stagekit("run", "p.toml")
    assert first.returncode == 0, first.stderr
    second = stagekit("run", "p.toml")
    assert second.returncode == 0, second.stderr
    assert [rows(second.stdout)[s][2].split()[0] for s in STAGES] == ["cached"] * 4
    assert "(0 ran, 4 cached, saved " in second.stdout.strip().splitlines()[-1]
    plan = stagekit("explain", "p.toml", "--param", "summarize.x=1")  # an unknown param: the run's check refuses
    assert plan.returncode == 1 and "summarize" in plan.stderr
    plan = stagekit("explain", "p.toml", "--rerun", "summarize")
    assert plan.returncode == 0 and plan.stdout.strip().splitlines()[-1].startswith("1 of 4 stages would run; 3 "
                                                                                     "cached (saves ")
