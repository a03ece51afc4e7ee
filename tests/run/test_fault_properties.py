"""The property of issue 13 over random DAGs with random failing, hanging and mutating stages: under every
executor the run ends within its timeout, names the same first failure, and loses no finished output."""

from __future__ import annotations

import time
from typing import Any

import fault_stages as fs
import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from stagekit import MergeConflictError, Pipeline, PipelineError, Stage, StagekitError, stage

RUN_TIMEOUT = 30.0
KINDS = ["ok", "ok", "ok", "fail", "hang", "mutate", "frame", "clash"]


@st.composite
def faulty_dags(draw: st.DrawFn) -> list[Stage]:
    """Creators, updaters and readers of a few dict artifacts, some also reading the initial frame F; each
    stage ok, failing, hanging past its timeout, changing an input in place, or clashing with a sibling."""
    n = draw(st.integers(2, 8))
    stages: list[Stage] = []
    created: list[str] = []
    for i in range(n):
        role = draw(st.sampled_from(["create", "update", "read"])) if created else "create"
        kind = draw(st.sampled_from(KINDS))
        name = f"s{i}"
        reads_frame = kind == "frame" or draw(st.booleans())
        extra = ["F"] if reads_frame else []
        options: dict[str, Any] = {"timeout": 0.2} if kind == "hang" else {}
        if role == "create":
            slot = f"a{len(created)}"
            reqs = sorted(draw(st.sets(st.sampled_from(created), max_size=2))) if created else []
            created.append(slot)
            provides = [slot]
        elif role == "update":
            slot = draw(st.sampled_from(created))
            reqs, provides = [slot], [slot]
        else:
            reqs = sorted(draw(st.sets(st.sampled_from(created), min_size=1, max_size=2)))
            slot, provides = f"r{i}", [f"r{i}"]
        stages.append(stage(fs.behave, name=name, requires=[*reqs, *extra], provides=provides,
                            params={"kind": kind, "me": name, "slot": slot}, **options))
    return stages


def outcome(stages: list[Stage], executor: str) -> tuple[Any, Any, float]:
    """(what the run reported first, its result, seconds): ("ok",) or (error type, stage or join)."""
    frame = pd.DataFrame({"v": [1, 2, 3]})
    start = time.perf_counter()
    try:
        result = Pipeline(stages).run({"F": frame}, executor=executor, workers=3, timeout=RUN_TIMEOUT,
                                      isolation="strict")
        first: Any = ("ok",)
    except StagekitError as exc:
        result = exc.result  # type: ignore[attr-defined]
        where = exc.join if isinstance(exc, MergeConflictError) else getattr(exc, "stage", None)
        first = (type(exc).__name__, where)
    elapsed = time.perf_counter() - start
    assert frame["v"].tolist() == [1, 2, 3]  # no stage changed what the others (and the caller) see
    return first, result, elapsed


def check(stages: list[Stage], executors: tuple[str, ...]) -> None:
    try:
        Pipeline(stages).dag(["F"])
    except PipelineError:
        return  # a generated cycle is refused before anything runs
    seen = {ex: outcome(stages, ex) for ex in executors}
    firsts = {ex: first for ex, (first, _, _) in seen.items()}
    assert len(set(firsts.values())) == 1, firsts
    event(firsts[executors[0]][0])
    finished: dict[str, Any] = {}
    for ex, (_, result, elapsed) in seen.items():
        assert elapsed < RUN_TIMEOUT + 5, (ex, elapsed)
        for name, record in result.stages.items():
            if record.status == "ok":  # nothing finished is lost, and it is the same wherever it ran
                assert name in result.outputs, (ex, name)
                assert finished.setdefault(name, result.outputs[name]) == result.outputs[name], (ex, name)


@pytest.fixture(autouse=True)
def long_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    # longer than anything a stage before the first failure takes here (hangs time out after 0.2 s), so what
    # is reported first never depends on timing
    monkeypatch.setenv("STAGEKIT_CANCEL_GRACE", "5")


@pytest.mark.filterwarnings("ignore:The inplace keyword")
@settings(max_examples=25)
@given(faulty_dags())
def test_random_faults_end_the_same_under_the_in_process_executors(stages: list[Stage]) -> None:
    check(stages, ("sequential", "thread"))


@pytest.mark.filterwarnings("ignore:The inplace keyword")
@settings(max_examples=8)  # each run starts worker processes (and replaces those killed at a timeout)
@given(faulty_dags())
def test_random_faults_end_the_same_under_every_executor(stages: list[Stage]) -> None:
    check(stages, ("sequential", "thread", "process"))
