"""The ``stagekit`` command, in-process through ``stagekit.cli.main``.

Stages come from a real distribution on disk: a plugin module and its ``*.dist-info`` (METADATA and
entry_points.txt in the group ``stagekit``) in a tmp directory put on sys.path, which importlib.metadata
finds like any installed package. ``STAGEKIT_PLUGINS=clifix`` allows only that plugin, so whatever else is
installed in the running environment is found but never imported. Tests that install with pip into a fresh
venv live in tests/integration/.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import pytest

from stagekit.cli import main

PLUGIN_MODULE = "skt_cli_fixture"
PLUGIN_SOURCE = '''\
"""Stages for the CLI tests: prices -> returns -> stats, and one that fails."""

from stagekit import hookimpl, stage


@stage(provides=["prices"], params={"n": 4}, tags=["cli"])
def make_prices(n):
    """n prices, one a day."""
    return [100.0 + i for i in range(n)]


@stage(requires=["prices"], provides=["returns"], tags=["cli"])
def returns(prices):
    return [b / a - 1 for a, b in zip(prices, prices[1:])]


@stage(requires=["returns"], provides=["mean", "count"], tags=["cli"])
def stats(returns):
    return {"mean": sum(returns) / len(returns), "count": len(returns)}


@stage(requires=["prices"], provides=["nothing"], tags=["failing"])
def explode(prices):
    raise ZeroDivisionError("explode divides by zero on purpose")


@hookimpl
def stagekit_register_stages(register):
    for s in (make_prices, returns, stats, explode):
        register(s)
'''
GOOD = '[pipeline]\ntargets = ["stats"]\n\n[params.make_prices]\nn = 6\n'
SUMMARY_KEYS = {"run_id", "ok", "executor", "snapshot", "duration", "artifacts", "stages"}
STAGE_SUMMARY_KEYS = {"name", "plugin", "status", "duration", "reason", "saved", "provided", "error", "warnings",
                      "logs"}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory, with the fixture plugin installed as a distribution on sys.path."""
    site = tmp_path / "site"
    info = site / f"{PLUGIN_MODULE}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (site / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: skt-cli-fixture\nVersion: 0.1.0\nRequires-Dist: stagekit>=0.1\n",
        encoding="utf-8",
    )
    (info / "entry_points.txt").write_text(f"[stagekit]\nclifix = {PLUGIN_MODULE}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    for var in ("STAGEKIT_DISABLE", "STAGEKIT_STRICT_PLUGINS", "STAGEKIT_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STAGEKIT_PLUGINS", "clifix")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work
    sys.modules.pop(PLUGIN_MODULE, None)


@pytest.fixture
def no_plugins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Autoload off: for what needs no stages."""
    for var in ("STAGEKIT_PLUGINS", "STAGEKIT_DISABLE", "STAGEKIT_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STAGEKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stagekit: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write(name: str, text: str) -> str:
    Path(name).write_text(text, encoding="utf-8")
    return name


# --- --version and help ----------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from stagekit import __version__

    assert cli(capsys, "--version") == (0, f"stagekit {__version__}\n", "")
    # after other options it goes through the parser, with the same answer
    assert cli(capsys, "--traceback", "--version") == (0, f"stagekit {__version__}\n", "")


def test_version_starts_fast_and_imports_nothing_heavy() -> None:
    code = ("import sys, time; t = time.perf_counter(); from stagekit.cli import main; main(['--version']); "
            "print(round((time.perf_counter() - t) * 1000, 1)); "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'pandera', 'ray', 'numpy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line, in_process_ms, heavy = proc.stdout.splitlines()
    assert line.startswith("stagekit ")
    assert heavy == "[]"
    script = Path(sys.executable).with_name("stagekit")
    fallback = [sys.executable, "-c", "from stagekit.cli import main; main()"]
    command = [str(script)] if script.exists() else fallback
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([*command, "--version"], capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
    print(f"\nstagekit --version: median {statistics.median(times):.0f} ms a process "
          f"({in_process_ms} ms of it in stagekit); see benchmarks/cli_startup.py")


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str], no_plugins: Path) -> None:
    code, out, _ = cli(capsys)
    assert code == 2
    assert out.startswith("usage: stagekit")
    for command in ("plugins", "stages", "graph", "check", "run"):
        assert command in out


# --- pipeline file errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["graph", "check", "run"])
def test_a_missing_pipeline_file_is_a_one_line_error(capsys: pytest.CaptureFixture[str], no_plugins: Path,
                                                      command: str) -> None:
    code, out, err = cli(capsys, command, "nowhere.toml")
    assert (code, out) == (2, "")
    one_line_error(err, "'nowhere.toml'", "does not exist")


def test_invalid_toml_names_the_file_and_the_place(capsys: pytest.CaptureFixture[str],
                                                   no_plugins: Path) -> None:
    write("broken.toml", '[pipeline]\ntargets = ["stats"]\nexecutor thread\n')
    code, out, err = cli(capsys, "check", "broken.toml")
    assert (code, out) == (2, "")
    one_line_error(err, "broken.toml", "invalid TOML", "line 3")


@pytest.mark.parametrize(("text", "fragments"), [
    ('[pipelin]\ntargets = ["stats"]\n', ["'pipelin'", "unknown top-level key"]),
    ('[pipeline]\ntarget = ["stats"]\n', ["'pipeline.target'", "unknown key", "targets"]),
    ('[pipeline]\nworkers = "4"\n', ["'pipeline.workers'", "must be an integer, not str"]),
    ('[pipeline]\nworkers = 0\n', ["'pipeline.workers'", "at least 1"]),
    ('[pipeline]\ntargets = "stats"\n', ["'pipeline.targets'", "must be a list"]),
    ('[pipeline]\ncontracts = "loose"\n', ["'pipeline.contracts'", "'loose'"]),
    ('artifacts = 3\n', ["'artifacts'", "must be a table"]),
    ('[params]\nmake_prices = 3\n', ["'params.make_prices'", "must be a table"]),
])
def test_unknown_keys_and_wrong_types_name_the_key(capsys: pytest.CaptureFixture[str], no_plugins: Path,
                                                   text: str, fragments: list[str]) -> None:
    write("p.toml", text)
    for command in ("check", "run"):
        code, out, err = cli(capsys, command, "p.toml")
        assert (code, out) == (2, "")
        one_line_error(err, "p.toml", *fragments)


# --- listing ---------------------------------------------------------------------------------------------


def test_plugins_json(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, err = cli(capsys, "plugins", "--json")
    assert (code, err) == (0, "")
    records = json.loads(out)
    assert all(set(r) == {"name", "distribution", "version", "status", "error", "stages", "registered",
                          "entry_point", "shadowed", "note"} for r in records)
    mine = next(r for r in records if r["name"] == "clifix")
    assert mine == {"name": "clifix", "distribution": "skt-cli-fixture", "version": "0.1.0",
                    "status": "loaded", "error": None, "entry_point": PLUGIN_MODULE, "shadowed": [], "note": None,
                    "stages": ["make_prices", "returns", "stats", "explode"],
                    "registered": {"stages": ["make_prices", "returns", "stats", "explode"]}}
    builtins = [r for r in records if r["distribution"] == "stagekit"]
    assert builtins and {r["status"] for r in builtins} == {"loaded"}
    assert {r["name"]: r["registered"] for r in builtins} == {
        "stagekit.executors": {"executors": ["sequential", "thread", "process"]},
        "stagekit.merges": {"merges": ["collections.abc.Mapping", "collections.abc.Set", "pandas.DataFrame",
                                       "pyarrow.lib.Table", "builtins.object"]},
        "stagekit.contracts": {"validators": ["stagekit_check_compatible", "stagekit_validate_artifact"]},
        "stagekit.codecs": {"codecs": ["pandas.DataFrame", "pandas.Series", "pyarrow.lib.Table", "numpy.ndarray",
                                       "numpy.generic", "builtins.dict", "builtins.list", "builtins.str",
                                       "builtins.int", "builtins.float", "builtins.bool", "builtins.NoneType",
                                       "builtins.tuple", "stagekit.frozenmap.FrozenMap", "builtins.object"]},
        "stagekit.formats": {"formats": ["csv", "parquet", "json", "excel"]}}
    # everything else installed in this environment was found but not loaded (the allow list)
    assert {r["status"] for r in records if r not in builtins and r is not mine} <= {"disabled"}


def test_stages_json_and_table(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = cli(capsys, "stages", "--json")
    assert code == 0
    stages = json.loads(out)
    assert [s["name"] for s in stages] == ["explode", "make_prices", "returns", "stats"]  # sorted by name
    assert stages[3] == {"name": "stats", "plugin": "clifix", "distribution": "skt-cli-fixture",
                         "requires": ["returns"], "provides": ["mean", "count"], "tags": ["cli"],
                         "description": ""}
    assert stages[1]["description"] == "n prices, one a day."

    code, out, _ = cli(capsys, "stages")
    header, _, *rows = out.splitlines()
    assert header.split() == ["stage", "plugin", "requires", "provides", "tags"]
    assert rows[3].split() == ["stats", "clifix", "returns", "mean,", "count", "cli"]


def test_autoload_off_leaves_only_the_builtins(capsys: pytest.CaptureFixture[str], project: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGEKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    code, out, _ = cli(capsys, "stages", "--json")
    assert (code, json.loads(out)) == (0, [])
    assert PLUGIN_MODULE not in sys.modules


def test_disable_flag_blocks_and_an_unknown_name_is_an_error(capsys: pytest.CaptureFixture[str],
                                                             project: Path) -> None:
    code, out, _ = cli(capsys, "--disable", "clifix", "plugins", "--json")
    assert code == 0
    assert next(r for r in json.loads(out) if r["name"] == "clifix")["status"] == "blocked"
    assert PLUGIN_MODULE not in sys.modules

    code, out, err = cli(capsys, "--disable", "clifx", "stages")
    assert (code, out) == (2, "")
    one_line_error(err, "'clifx'", "did you mean", "clifix")


# --- graph -----------------------------------------------------------------------------------------------


def test_graph_mermaid(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = cli(capsys, "graph", write("p.toml", GOOD))
    assert code == 0
    assert out.splitlines() == [
        "flowchart LR",
        '  n_make_prices["make_prices"]',
        '  n_returns["returns"]',
        '  n_stats["stats"]',
        "  n_make_prices -- prices --> n_returns",
        "  n_returns -- returns --> n_stats",
    ]


def test_graph_dot(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, _ = cli(capsys, "graph", write("p.toml", GOOD), "--format", "dot")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "digraph pipeline {" and lines[-1] == "}"
    assert '  "make_prices" -> "returns" [label="prices"];' in lines
    assert '  "returns" -> "stats" [label="returns"];' in lines
    assert sum("->" in line for line in lines) == 2


def test_graph_json_with_initial_artifacts(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    write("p.toml", '[pipeline]\nstages = ["returns", "stats"]\n\n[artifacts]\nprices = [1.0, 2.0, 4.0]\n')
    code, out, _ = cli(capsys, "graph", "p.toml", "--format", "json")
    assert code == 0
    assert json.loads(out) == {
        "stages": [
            {"name": "returns", "requires": ["prices"], "provides": ["returns"], "after": [],
             "plugin": "clifix"},
            {"name": "stats", "requires": ["returns"], "provides": ["mean", "count"], "after": ["returns"],
             "plugin": "clifix"},
        ],
        "initial": ["prices"],
    }
    code, out, _ = cli(capsys, "graph", "p.toml")  # mermaid shows where initial artifacts enter
    assert '  inputs(["inputs"])' in out.splitlines()
    assert "  inputs -- prices --> n_returns" in out.splitlines()


# --- check -----------------------------------------------------------------------------------------------


def test_check_ok_is_exit_0(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    assert cli(capsys, "check", write("p.toml", GOOD)) == (0, "p.toml: OK (3 stages)\n", "")


def test_check_with_problems_is_exit_1_and_lists_them(capsys: pytest.CaptureFixture[str],
                                                      project: Path) -> None:
    write("p.toml", '[pipeline]\nstages = ["returns", "stats"]\n')  # nobody provides prices
    code, out, err = cli(capsys, "check", "p.toml")
    assert (code, out) == (1, "")
    head, *problems = err.strip().splitlines()
    assert head == "p.toml: 1 problem(s)"
    assert len(problems) == 1
    assert "'returns'" in problems[0] and "'prices'" in problems[0]
    assert "Traceback" not in err


def test_check_an_unknown_stage_name_names_it(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, err = cli(capsys, "check", write("p.toml", '[pipeline]\ntargets = ["stast"]\n'))
    assert code != 0 and out == ""
    assert "unknown stage 'stast'" in err and "'stats'" in err  # with a suggestion
    assert "Traceback" not in err


def test_check_reports_an_unknown_executor(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    write("p.toml", GOOD.replace("[pipeline]\n", '[pipeline]\nexecutor = "warp"\n'))
    code, _, err = cli(capsys, "check", "p.toml")
    assert code == 1
    assert "'warp'" in err


# --- run -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("executor", ["sequential", "thread"])
def test_run_json_summary(capsys: pytest.CaptureFixture[str], project: Path, executor: str) -> None:
    code, out, err = cli(capsys, "run", write("p.toml", GOOD), "--json", "--executor", executor)
    assert (code, err) == (0, ""), err
    summary = json.loads(out)
    assert set(summary) == SUMMARY_KEYS
    assert (summary["ok"], summary["executor"], summary["snapshot"]) == (True, executor, None)
    assert summary["duration"] >= 0
    assert {"prices", "returns", "mean", "count"} <= set(summary["artifacts"])
    assert [s["name"] for s in summary["stages"]] == ["make_prices", "returns", "stats"]
    for s in summary["stages"]:
        assert set(s) == STAGE_SUMMARY_KEYS
        assert (s["plugin"], s["status"], s["error"], s["warnings"]) == ("clifix", "ok", None, [])
    assert summary["stages"][2]["provided"] == ["mean", "count"]


def test_run_prints_a_table_without_json(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, err = cli(capsys, "run", write("p.toml", GOOD))
    assert (code, err) == (0, "")  # no live progress: stderr is not a terminal
    lines = out.splitlines()
    assert lines[0].split() == ["stage", "plugin", "status", "time", "provided"]
    assert [line.split()[:3] for line in lines[2:5]] == [
        ["make_prices", "clifix", "ok"], ["returns", "clifix", "ok"], ["stats", "clifix", "ok"]]
    assert "3/3 stages ok" in lines[-1]


@pytest.mark.parametrize(("args", "fragments"), [
    (("--executor", "warp"), ["unknown executor 'warp'", "available: process, sequential, thread"]),
    # the hint names the plugin only where it is really missing; installed but not loaded, it says why
    (("--executor", "ray"), ["unknown executor 'ray'", "pip install stagekit-ray" if find_spec("stagekit_ray") is None
                             else "stagekit-ray 0.1.0 is installed, but its plugin 'ray' is disabled"]),
    (("--workers", "-1"), ["workers must be at least 1"]),
    (("--workers", "0"), ["workers must be at least 1"]),
])
def test_run_and_check_refuse_a_bad_executor_alike(capsys: pytest.CaptureFixture[str], project: Path,
                                                   args: tuple[str, ...], fragments: list[str]) -> None:
    code, out, err = cli(capsys, "run", write("p.toml", GOOD), *args)
    assert (code, out) == (1, "")
    head, problem = err.strip().splitlines()
    assert head == "p.toml: 1 problem(s); nothing was run" and "Traceback" not in err
    assert all(fragment in problem for fragment in fragments), (fragments, problem)
    executor = dict(zip(args[::2], args[1::2], strict=True)).get("--executor")
    if executor is not None:  # the same problem, word for word, from check (it has no --executor: the file)
        bad = write("r.toml", GOOD.replace("[pipeline]\n", f'[pipeline]\nexecutor = "{executor}"\n'))
        code, _, checked = cli(capsys, "check", bad)
        assert code == 1 and checked.strip().splitlines()[1] == problem


def test_a_failing_stage_is_two_lines_and_exit_1(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    write("p.toml", '[pipeline]\ntargets = ["explode"]\n')
    code, out, err = cli(capsys, "run", "p.toml")
    assert (code, out) == (1, "")
    first, second = err.strip().splitlines()
    assert first.startswith("stagekit: error: ")
    for fragment in ("'explode'", "'clifix'", "ZeroDivisionError", "explode divides by zero on purpose"):
        assert fragment in first
    assert f"{PLUGIN_MODULE}.py:" in second and "in explode" in second and "--traceback" in second
    assert "Traceback" not in err


def test_traceback_flag_shows_the_whole_story(capsys: pytest.CaptureFixture[str], project: Path) -> None:
    write("p.toml", '[pipeline]\ntargets = ["explode"]\n')
    code, _, err = cli(capsys, "--traceback", "run", "p.toml")
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert 'raise ZeroDivisionError("explode divides by zero on purpose")' in err  # the stage's own line
    assert err.strip().splitlines()[-1].startswith("stagekit: error: ")

    code, _, err = cli(capsys, "--traceback", "check", "missing.toml")  # a plain error too
    assert code == 2
    assert "Traceback (most recent call last)" in err and "PipelineFileError" in err


def test_a_failed_run_with_json_still_prints_what_completed(capsys: pytest.CaptureFixture[str],
                                                            project: Path) -> None:
    write("p.toml", '[pipeline]\ntargets = ["explode"]\n')
    code, out, err = cli(capsys, "run", "p.toml", "--json")
    assert code == 1
    summary = json.loads(out)
    assert set(summary) == SUMMARY_KEYS
    assert summary["ok"] is False
    status = {s["name"]: (s["status"], s["error"]) for s in summary["stages"]}
    assert status["make_prices"] == ("ok", None)
    assert status["explode"][0] == "failed" and "explode divides by zero" in status["explode"][1]
    assert "prices" in summary["artifacts"]
    assert err.startswith("stagekit: error: ")


def test_a_report_that_cannot_be_written_is_named_and_the_run_kept(capsys: pytest.CaptureFixture[str],
                                                                   project: Path) -> None:
    Path("blocked").write_text("a file where the report's folder should be")
    code, out, err = cli(capsys, "run", write("p.toml", GOOD), "--report", "blocked/report.html")
    assert code != 0 and "Traceback" not in err
    assert "3/3 stages ok" in out  # the run's summary is printed: nothing finished is lost
    one_line_error(err, "the run's report cannot be written to 'blocked/report.html'", "completed")
