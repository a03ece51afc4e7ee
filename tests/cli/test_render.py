"""The CLI's text for runs with the run store: the summary after a run and what ``explain`` prints."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from stagekit.cli import render
from stagekit.records import RunResult, StageRecord


def result(*records: StageRecord) -> RunResult:
    return RunResult("r1", True, {"a": 1, "b": 2}, {r.name: r for r in records}, {}, 1.5, "sequential")


def test_a_run_without_the_store_prints_as_before() -> None:
    text = render.run_summary(result(StageRecord("one", "p", "ok", 0.25, ("a",))))
    lines = text.splitlines()
    assert lines[0].split() == ["stage", "plugin", "status", "time", "provided"]
    assert lines[2].split() == ["one", "p", "ok", "250.0", "ms", "a"]
    assert lines[-1] == "run r1: 1/1 stages ok in 1.50 s (sequential); artifacts: a, b"


def test_cached_stages_show_what_they_saved_and_the_last_line_counts_them() -> None:
    text = render.run_summary(result(
        StageRecord("one", "p", "cached", 0.0, ("a",), reason="cached from run r0", saved=3.2),
        StageRecord("two", "p", "ok", 0.25, ("b",), reason="param top_n 20 → 30")))
    lines = text.splitlines()
    assert lines[0].split() == ["stage", "plugin", "status", "time", "provided", "reason"]
    assert lines[2].split() == ["one", "p", "cached", "(saved", "3.20", "s)", "-", "a", "cached", "from", "run", "r0"]
    assert lines[3].split()[:6] == ["two", "p", "ok", "250.0", "ms", "b"]
    assert lines[3].endswith("param top_n 20 → 30")
    assert lines[-1] == ("run r1: 2/2 stages ok (1 ran, 1 cached, saved 3.20 s) in 1.50 s (sequential); "
                         "artifacts: a, b")


def decision(stage: str, action: str, reason: str, saved: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(stage=stage, action=action, reason=reason, saved=saved)


PLAN = [decision("load", "cached", "cached from run r0", 40.0), decision("clean", "cached", "cached from run r0", 1.2),
        decision("model", "run", "param top_n 20 → 30"), decision("report", "run", "input 'model' changed")]


def test_explain_is_a_table_and_a_last_line() -> None:
    lines = render.explain(PLAN, workspace=Path("/ws")).splitlines()
    assert lines[0].split() == ["stage", "action", "reason", "saves"]
    assert lines[2].split() == ["load", "cached", "cached", "from", "run", "r0", "40.00", "s"]
    assert lines[4].split() == ["model", "run", "param", "top_n", "20", "→", "30", "-"]
    assert lines[-1] == "2 of 4 stages would run; 2 cached (saves 41.20 s)"


def test_explain_outside_a_workspace_and_with_a_missing_input_says_so() -> None:
    plan = [decision("load", "missing", "input 'raw' is not stored"), decision("clean", "run", "no earlier run")]
    lines = render.explain(plan, workspace=None).splitlines()
    assert lines[-2] == ("1 of 2 stages would run; none cached; 1 missing (load): the run would stop before any "
                         "stage runs")
    assert lines[-1].startswith("not in a workspace: runs are not recorded and nothing is cached")


def test_explain_json() -> None:
    found = render.explain_json(PLAN, pipeline="demo", workspace=Path("/ws"))
    assert {k: found[k] for k in ("pipeline", "workspace", "run", "cached", "missing", "saved")} == {
        "pipeline": "demo", "workspace": "/ws", "run": 2, "cached": 2, "missing": 0, "saved": 41.2}
    assert found["stages"][2] == {"stage": "model", "action": "run", "reason": "param top_n 20 → 30", "saved": 0.0}
