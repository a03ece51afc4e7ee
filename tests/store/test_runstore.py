"""The run store as a run uses it: what check says, what explain predicts, what is refused before a run."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from stagekit import (
    Host,
    MissingInputError,
    Pipeline,
    PipelineError,
    PipelineWarning,
    hookimpl,
    load_pipeline,
    stage,
)
from stagekit.records import LazyValues
from stagekit.store.fingerprints import path_state
from stagekit.store.rundb import RunDatabase


def make_set() -> set[int]:
    return {1}


def base(n: int) -> int:
    return n + 1


def double(b: int, k: int = 2) -> int:
    return b * k


def total(d: int) -> int:
    return d + 100


STAGES = [stage(base, requires=["n"], provides=["b"]), stage(double, requires=["b"], provides=["d"], params={"k": 2}),
          stage(total, requires=["d"], provides=["t"])]


class Plugin:
    @hookimpl
    def stagekit_register_stages(self, register: Any) -> None:
        for s in STAGES:
            register(s)


def project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeline.toml").write_text('[pipeline]\nname = "p"\nworkspace = "."\ntargets = ["total"]\n\n'
                                        '[artifacts]\nn = 1\n')
    return root / "pipeline.toml"


def test_an_output_type_without_a_codec_is_a_warning_of_check_and_run(tmp_path: Path) -> None:
    pipeline = Pipeline([stage(make_set, provides=["s"], types={"s": set})], host=Host.isolated())
    assert not pipeline.validate().warnings  # without a run store, nothing to say
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = pipeline.run(workspace=tmp_path)
    said = [str(w.message) for w in seen if issubclass(w.category, PipelineWarning)]
    assert said and "stage 'make_set': its output 's': no codec is registered for set" in said[0]
    assert result.stages["make_set"].stored == {}
    with pytest.warns(PipelineWarning):
        again = pipeline.run(workspace=tmp_path)
    assert again.stages["make_set"].status == "ok" and "could not be stored" in (again.stages["make_set"].reason or "")


def test_a_rerun_of_an_unknown_stage_is_refused_before_any_stage_runs(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"--rerun 'doubel': no such stage in this run \(did you mean 'double'"):
        Pipeline(STAGES, host=Host.isolated()).run({"n": 1}, workspace=tmp_path, rerun=["doubel"])
    assert RunDatabase.in_workspace(tmp_path).runs() == []  # refused before the run began


def test_explain_predicts_what_a_run_then_does(tmp_path: Path) -> None:
    path = project(tmp_path)
    host = Host.isolated(Plugin())
    assert {p.action for p in load_pipeline(path, host=host).explain()} == {"run"}
    load_pipeline(path, host=host).run()
    plans = load_pipeline(path, host=host, params={"double": {"k": 3}}).explain()
    assert [(p.stage, p.action) for p in plans] == [("base", "cached"), ("double", "run"), ("total", "run")]
    assert plans[1].reason == "param k 2 → 3" and plans[2].reason == "upstream 'double' runs"
    assert plans[0].saved >= 0
    result = load_pipeline(path, host=host, params={"double": {"k": 3}}).run()
    assert {n: r.status for n, r in result.stages.items()} == {"base": "cached", "double": "ok", "total": "ok"}
    assert result.artifacts["t"] == 106


def test_a_narrowed_selection_takes_its_inputs_from_the_store_or_is_refused(tmp_path: Path) -> None:
    path = project(tmp_path)
    host = Host.isolated(Plugin())
    with pytest.raises(MissingInputError) as err:
        load_pipeline(path, host=host, from_stages=["double"]).run()
    assert (err.value.artifact, err.value.stage) == ("b", "base")
    assert "select 'base' too" in str(err.value)
    refused = load_pipeline(path, host=host, from_stages=["double"]).check()
    assert not refused.ok and "'b' must come from the run store (stage 'base'" in refused.problems[0]
    load_pipeline(path, host=host).run()
    result = load_pipeline(path, host=host, from_stages=["double"], params={"double": {"k": 5}}).run()
    assert {n: r.status for n, r in result.stages.items()} == {"base": "cached", "double": "ok", "total": "ok"}
    assert result.artifacts["t"] == 110
    upto = load_pipeline(path, host=host, to_stages=["double"]).run()
    assert set(upto.stages) == {"base", "double"}


def test_stages_to_come_from_the_store_need_a_workspace() -> None:
    with pytest.raises(PipelineError, match="no workspace is given"):
        Pipeline(STAGES, host=Host.isolated(), from_store=["base"]).run({"n": 1})


def test_a_reused_stages_outputs_and_the_results_artifacts_are_read_only_when_asked(tmp_path: Path) -> None:
    pipeline = Pipeline(STAGES, host=Host.isolated())
    pipeline.run({"n": 1}, workspace=tmp_path)
    again = pipeline.run({"n": 1}, workspace=tmp_path)
    assert isinstance(again.artifacts, LazyValues) and not again.artifacts.loaded("t")
    assert "<not read>" in repr(again.artifacts)
    assert again.artifacts["t"] == 104 and again.artifacts.loaded("t")
    assert dict(again.artifacts) == {"n": 1, "b": 2, "d": 4, "t": 104}


def test_a_path_is_fingerprinted_by_what_it_names(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n")
    before = path_state(str(data))
    assert before is not None and path_state("relative/path") is None and path_state("AAPL") is None
    (data / ".stagekit").mkdir()
    (data / ".stagekit" / "runs.sqlite").write_text("state")
    assert path_state(str(data)) == before  # a workspace's own state is nobody's input
    (data / "a.csv").write_text("x\n2\n3\n")
    assert path_state(str(data)) != before


def big_frame(n: int) -> Any:
    import numpy as np
    import pandas as pd

    return pd.DataFrame({"x": np.arange(n, dtype="float64"), "y": np.linspace(0.0, 1.0, n)})


def add_column(frame: Any, column: str) -> Any:
    frame = frame.copy()
    frame[column] = 1.0
    return frame


def frame_total(frame: Any) -> float:
    return float(frame.to_numpy().sum())


BIG = [stage(big_frame, requires=["n"], provides=["frame"]),
       stage(add_column, name="add_a", requires=["frame"], provides=["frame"], params={"column": "a"}),
       stage(add_column, name="add_b", requires=["frame"], provides=["frame"], params={"column": "b"}),
       stage(frame_total, requires=["frame"], provides=["total"])]


def test_under_the_process_executor_a_big_output_stays_in_the_store_for_the_next_worker(tmp_path: Path) -> None:
    pipeline = Pipeline(BIG, host=Host.isolated())
    plain = pipeline.run({"n": 200_000})  # 200,000 x 2 floats: over 1 MiB stored
    stored = pipeline.run({"n": 200_000}, workspace=tmp_path, executor="process", workers=2)
    made = stored.outputs["big_frame"]
    assert isinstance(made, LazyValues) and not made.loaded("frame")  # it never came back to the driver
    assert stored.artifacts["total"] == plain.artifacts["total"]
    assert stored.artifacts["frame"].equals(plain.artifacts["frame"])  # merged where add_a and add_b join
    assert made["frame"].equals(plain.outputs["big_frame"]["frame"])  # read from the store when asked
    again = pipeline.run({"n": 200_000}, workspace=tmp_path, executor="process", workers=2)
    assert {r.status for r in again.stages.values()} == {"cached"}
    assert again.artifacts["total"] == plain.artifacts["total"]
