"""Incremental runs (issue 14, items 4 to 6), as a user meets them: a pipeline run in a workspace, then run
again with nothing, a param, an input, the code or a ``version=`` changed; ``cache=False``, ``rerun``, early
cutoff, merged branches, paths, lazy reads, values without a codec, ``Workspace.load``; and the spaceflights-like
case through a pipeline file (a catalog, ``from_stages``, what comes from the store, what is missing,
``explain``). Real files, a real SQLite database and real processes, under every built-in executor."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import incremental_samples as s
import pandas as pd
import pytest

from stagekit import Host, MissingInputError, StageError, Workspace, hookimpl, load_pipeline
from stagekit.records import LazyValues
from stagekit.store.catalog import CatalogInput
from stagekit.store.rundb import RunDatabase

ALL_CHAIN = {"scale", "shift", "square", "side", "combine"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A workspace folder (its .stagekit made by the first run)."""
    path = tmp_path / "ws"
    path.mkdir()
    return path


# --- nothing changed, a param, an input -----------------------------------------------------------------------


def test_a_run_again_with_nothing_changed_reuses_every_stage(root: Path, executor: str) -> None:
    first = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)
    assert s.statuses(first) == dict.fromkeys(ALL_CHAIN, "ok")
    assert set(s.reasons(first).values()) == {"no earlier run"}
    assert first.artifacts["out"] == s.CHAIN_OUT
    again = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)
    assert s.statuses(again) == dict.fromkeys(ALL_CHAIN, "cached")
    assert set(s.reasons(again).values()) == {f"cached from run {first.run_id}"}
    assert all(r.saved == first.stages[n].duration for n, r in again.stages.items())
    assert s.values(again) == s.values(first)
    db = RunDatabase.in_workspace(root)
    assert [r.status for r in db.runs()] == ["ok", "ok"]
    assert {st.stage: st.status for st in db.stage_runs(again.run_id)} == dict.fromkeys(ALL_CHAIN, "cached")


def test_a_param_change_reruns_that_stage_and_what_is_downstream_of_it(root: Path, executor: str) -> None:
    first = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)
    changed = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor, params={"shift": {"offset": 4}})
    assert s.statuses(changed) == {"scale": "cached", "side": "cached", "shift": "ok", "square": "ok",
                                   "combine": "ok"}
    assert s.reasons(changed)["shift"] == "param offset 1 → 4"
    assert s.reasons(changed)["square"] == "input 'b' changed"
    assert s.reasons(changed)["combine"] == "input 'c' changed"
    assert changed.artifacts["out"] == {**s.CHAIN_OUT, "c": 100}
    # and back: the first run's stage runs are still there to reuse
    back = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)
    assert s.statuses(back) == dict.fromkeys(ALL_CHAIN, "cached")
    assert s.values(back) == s.values(first)


def test_an_input_change_reruns_exactly_its_readers_and_downstream(root: Path, executor: str) -> None:
    s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)
    changed = s.run(s.CHAIN, {**s.CHAIN_INPUTS, "m": 6}, root, executor=executor)
    assert s.ran(changed) == {"side", "combine"} and s.cached(changed) == {"scale", "shift", "square"}
    assert s.reasons(changed)["side"] == "input 'm' changed"
    assert s.reasons(changed)["combine"] == "input 's' changed"
    assert changed.artifacts["out"] == {"c": 49, "m": 6, "m2": 36}
    other = s.run(s.CHAIN, {**s.CHAIN_INPUTS, "n": 4}, root, executor=executor)
    assert s.ran(other) == {"scale", "shift", "square", "combine"} and s.cached(other) == {"side"}
    assert s.reasons(other)["scale"] == "input 'n' changed"


# --- a code change, a version bump ------------------------------------------------------------------------------

STAGE_MODULE = '''\
from stagekit import stage


@stage(requires=["n"], provides=["a"])
def first(n):
    return n + 1


@stage(requires=["a"], provides=["b"])
def second(a):
    return a * 2


@stage(requires=["b"], provides=["c"])
def third(b):
    return b - 3


STAGES = [first, second, third]
'''
EDITED = STAGE_MODULE.replace("return a * 2", "return a * 20")

CODE_RUN = """
import json, sys
import incremental_samples as s
import {module} as m
result = s.run(m.STAGES, {{"n": 1}}, sys.argv[1], executor=sys.argv[2])
print(json.dumps({{"statuses": s.statuses(result), "reasons": s.reasons(result), "values": s.values(result)}}))
"""


def test_a_code_change_reruns_the_edited_stage_and_downstream(tmp_path: Path, root: Path, executor: str) -> None:
    """The module is edited between two processes, as a user edits code and runs again."""
    code = tmp_path / "code"
    code.mkdir()
    module = code / "edited_stages.py"
    module.write_text(STAGE_MODULE)
    env = s.subprocess_env(code, PYTHONDONTWRITEBYTECODE="1")

    def run() -> dict[str, Any]:
        done = s.python(CODE_RUN.format(module="edited_stages"), str(root), executor, env=env)
        assert done.returncode == 0, done.stderr
        found: dict[str, Any] = json.loads(done.stdout)
        return found

    first = run()
    assert first["statuses"] == {"first": "ok", "second": "ok", "third": "ok"}
    assert first["values"]["c"] == 1
    module.write_text(EDITED)
    edited = run()
    assert edited["statuses"] == {"first": "cached", "second": "ok", "third": "ok"}
    assert edited["reasons"]["second"] == "code changed"
    assert edited["reasons"]["third"] == "input 'b' changed"
    assert edited["values"]["c"] == 37
    assert run()["statuses"] == {"first": "cached", "second": "cached", "third": "cached"}


@pytest.mark.parametrize("kind", ["sequential", "thread"])
def test_a_module_edited_and_reloaded_in_the_same_process_reruns_its_stage(
        tmp_path: Path, root: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook's way: the module is edited and ``importlib.reload``-ed in the running interpreter."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "reloaded_stages.py").write_text(STAGE_MODULE)
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    module = importlib.import_module("reloaded_stages")
    try:
        first = s.run(module.STAGES, {"n": 1}, root, executor=kind)
        assert s.ran(first) == {"first", "second", "third"}
        (code / "reloaded_stages.py").write_text(EDITED)
        importlib.invalidate_caches()
        module = importlib.reload(module)
        edited = s.run(module.STAGES, {"n": 1}, root, executor=kind)
        assert s.statuses(edited) == {"first": "cached", "second": "ok", "third": "ok"}
        assert s.reasons(edited)["second"] == "code changed"
        assert edited.artifacts["c"] == 37
    finally:
        sys.modules.pop("reloaded_stages", None)


def test_a_version_bump_reruns_the_stage_and_downstream(root: Path, executor: str) -> None:
    first = s.run(s.versioned(1), {"n": 3}, root, executor=executor)
    assert s.ran(first) == {"scale", "versioned", "square"}
    assert s.statuses(s.run(s.versioned(1), {"n": 3}, root, executor=executor)) == dict.fromkeys(
        ["scale", "versioned", "square"], "cached")
    bumped = s.run(s.versioned(2), {"n": 3}, root, executor=executor)
    assert s.statuses(bumped) == {"scale": "cached", "versioned": "ok", "square": "cached"}  # same value: cut off
    assert s.reasons(bumped)["versioned"] == "version 1 → 2"
    assert s.values(bumped) == s.values(first)


# --- cache=False, the run's cache=False, rerun, early cutoff ----------------------------------------------------


def test_a_stage_declared_cache_false_always_runs(root: Path, executor: str) -> None:
    s.run(s.NOISY, {"n": 1}, root, executor=executor)
    for _ in range(2):
        again = s.run(s.NOISY, {"n": 1}, root, executor=executor)
        assert s.statuses(again) == {"noisy": "ok", "after_noisy": "cached"}  # the same value: downstream reused
        assert s.reasons(again)["noisy"] == "cache=False: it always runs"
        assert again.artifacts["tens"] == 20


def test_a_run_without_the_cache_reuses_nothing_but_records_and_stores(root: Path, executor: str) -> None:
    s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)
    off = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor, cache=False)
    assert s.statuses(off) == dict.fromkeys(ALL_CHAIN, "ok")
    assert set(s.reasons(off).values()) == {"the cache is off (--no-cache)"}
    db = RunDatabase.in_workspace(root)
    assert db.run("latest").run_id == off.run_id and db.run("latest").status == "ok"
    assert {st.stage: st.status for st in db.stage_runs(off.run_id)} == dict.fromkeys(ALL_CHAIN, "ok")
    on = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)
    assert set(s.reasons(on).values()) == {f"cached from run {off.run_id}"}  # the uncached run was recorded


def test_rerun_runs_the_named_stage_and_only_what_its_new_value_changes(root: Path, executor: str) -> None:
    first = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)
    again = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor, rerun=["shift"])
    assert s.ran(again) == {"shift"} and s.cached(again) == ALL_CHAIN - {"shift"}  # same output: cut off
    assert s.reasons(again)["shift"] == "asked to run again (--rerun)"
    assert s.values(again) == s.values(first)


def test_a_rerun_of_an_unknown_stage_is_refused_before_any_stage_runs(root: Path) -> None:
    with pytest.raises(Exception, match=r"--rerun 'shfit': no such stage in this run \(did you mean 'shift'\?\)"):
        s.run(s.CHAIN, s.CHAIN_INPUTS, root, rerun=["shfit"])
    assert RunDatabase.in_workspace(root).runs() == []


def test_a_stage_whose_rerun_gives_the_same_value_leaves_downstream_cached(root: Path, executor: str) -> None:
    s.run(s.CAPPED, {"n": 5}, root, executor=executor)
    raised = s.run(s.CAPPED, {"n": 5}, root, executor=executor, params={"cap": {"limit": 200}})
    assert s.statuses(raised) == {"cap": "ok", "describe": "cached"}  # min(5, 200) == min(5, 100)
    assert raised.artifacts["text"] == "capped at 5"
    lowered = s.run(s.CAPPED, {"n": 5}, root, executor=executor, params={"cap": {"limit": 2}})
    assert s.statuses(lowered) == {"cap": "ok", "describe": "ok"}
    assert lowered.artifacts["text"] == "capped at 2"


# --- merged branches ---------------------------------------------------------------------------------------------


def test_a_merged_artifact_is_reused_and_reruns_with_one_branchs_param(root: Path, executor: str) -> None:
    first = s.run(s.MERGED, {"n": 10}, root, executor=executor)
    assert first.artifacts["d"] == {"base": 10, "a": 1, "b": 2} and first.artifacts["announcement"] == "total 13"
    again = s.run(s.MERGED, {"n": 10}, root, executor=executor)
    assert s.statuses(again) == dict.fromkeys(["seed", "branch_a", "branch_b", "join", "announce"], "cached")
    assert s.values(again) == s.values(first)
    changed = s.run(s.MERGED, {"n": 10}, root, executor=executor, params={"branch_b": {"value": 7}})
    assert s.statuses(changed) == {"seed": "cached", "branch_a": "cached", "branch_b": "ok", "join": "ok",
                                   "announce": "ok"}
    assert s.reasons(changed)["branch_b"] == "param value 2 → 7"
    assert s.reasons(changed)["join"] == "input 'd' changed"
    assert changed.artifacts["d"] == {"base": 10, "a": 1, "b": 7} and changed.artifacts["announcement"] == "total 18"
    # a branch whose new value merges to the same total: the join runs, its downstream is cut off
    same_total = s.run(s.MERGED, {"n": 10}, root, executor=executor,
                       params={"branch_a": {"value": 6}, "branch_b": {"value": 2}})
    assert s.ran(same_total) == {"branch_a", "join"} and same_total.stages["announce"].status == "cached"
    assert same_total.artifacts["d"] == {"base": 10, "a": 6, "b": 2}


# --- a path as an initial artifact ------------------------------------------------------------------------------


def test_editing_a_file_given_by_path_reruns_its_reader(tmp_path: Path, root: Path, executor: str) -> None:
    data = tmp_path / "notes.txt"
    data.write_text("one two three")
    first = s.run(s.PATHS, {"data": str(data)}, root, executor=executor)
    assert first.artifacts["words"] == 3
    assert s.statuses(s.run(s.PATHS, {"data": str(data)}, root, executor=executor)) == {
        "read_text": "cached", "count_words": "cached"}
    data.write_text("one two three four")
    edited = s.run(s.PATHS, {"data": str(data)}, root, executor=executor)
    assert s.statuses(edited) == {"read_text": "ok", "count_words": "ok"}
    assert s.reasons(edited)["read_text"] == "input 'data' changed"
    assert edited.artifacts["words"] == 4
    # touched, the same bytes: the reader runs again (a path's state is its files' sizes and times), and what
    # it reads is the same text, so the counter is reused
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 1_000_000))
    touched = s.run(s.PATHS, {"data": str(data)}, root, executor=executor)
    assert s.statuses(touched) == {"read_text": "ok", "count_words": "cached"}
    assert touched.artifacts["words"] == 4


# --- reused outputs are read lazily -----------------------------------------------------------------------------


def test_reused_outputs_are_read_only_when_a_stage_that_runs_needs_them(
        tmp_path: Path, root: Path, executor: str) -> None:
    log = tmp_path / "reads.log"
    codecs = s.CountedCodecs(log)
    first = s.run(s.LAZY, {"n": 2}, root, executor=executor, plugins=[codecs])
    assert first.artifacts["used"] == 201 and s.reads(log) == []  # written by its codec, never read back
    again = s.run(s.LAZY, {"n": 2}, root, executor=executor, plugins=[codecs])
    assert s.statuses(again) == dict.fromkeys(["make_blob", "make_other", "use_blob"], "cached")
    assert isinstance(again.artifacts, LazyValues)
    assert not any(again.artifacts.loaded(a) for a in ("blob", "other", "used"))
    assert s.reads(log) == []  # nothing needed them: nothing read
    changed = s.run(s.LAZY, {"n": 2}, root, executor=executor, plugins=[codecs], params={"use_blob": {"extra": 5}})
    assert s.statuses(changed) == {"make_blob": "cached", "make_other": "cached", "use_blob": "ok"}
    assert changed.artifacts["used"] == 205
    assert s.reads(log) == [200]  # the blob, once, for the stage that ran; "other" not at all
    assert not changed.artifacts.loaded("other")
    assert changed.artifacts["other"] == s.Counted(2000)  # read when asked for
    assert s.reads(log) == [200, 2000]


# --- a value with no codec ----------------------------------------------------------------------------------------


def test_a_value_with_no_codec_is_not_stored_and_its_stage_not_cached(root: Path, executor: str) -> None:
    first = s.run(s.OPAQUE, {"n": 4}, root, executor=executor)
    assert first.artifacts["opened"] == 8
    assert "opaque" not in first.stages["make_opaque"].stored and "opened" in first.stages["open_opaque"].stored
    again = s.run(s.OPAQUE, {"n": 4}, root, executor=executor)
    assert s.statuses(again) == {"make_opaque": "ok", "open_opaque": "ok"}
    assert s.reasons(again)["make_opaque"] == (f"output 'opaque' could not be stored in run {first.run_id} (no "
                                               "codec takes its value)")
    assert s.reasons(again)["open_opaque"] == ("not cached: input 'opaque' has no fingerprint (no codec stores "
                                               "its value)")
    assert again.artifacts["opened"] == 8
    with pytest.raises(Exception, match="opaque"):
        Workspace(root).load("opaque", host=Host.isolated())


# --- Workspace.load -------------------------------------------------------------------------------------------


def test_workspace_load_gives_the_latest_value_of_an_artifact(root: Path, executor: str) -> None:
    s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)
    assert Workspace(root).load("out", host=Host.isolated()) == s.CHAIN_OUT
    changed = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor, params={"scale": {"factor": 3}})
    assert Workspace(root).load("a", host=Host.isolated()) == 9
    assert Workspace(root).load("out", host=Host.isolated()) == changed.artifacts["out"] == {**s.CHAIN_OUT, "c": 100}
    s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)  # back to factor 2: every stage cached
    assert Workspace(root).load("a", host=Host.isolated()) == 6
    assert Workspace(root).load("out", host=Host.isolated()) == s.CHAIN_OUT
    assert Workspace(root).load("a", run=changed.run_id, host=Host.isolated()) == 9


# --- the spaceflights-like case through a pipeline file -----------------------------------------------------------

COMPANIES = pd.DataFrame({"id": [1, 2, 3, 4], "iata_approved": ["t", "f", "t", "t"],
                          "rating": [0.9, 0.5, 0.7, 0.8]})
SHUTTLES = pd.DataFrame({"shuttle": list("abcdefgh"), "company_id": [1, 2, 3, 4, 1, 2, 3, 4],
                         "price": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0]})

FILE = """\
[pipeline]
name = "spaceflights"
workspace = "."

[catalog.companies]
path = "data/01_raw/companies.csv"

[catalog.shuttles]
path = "data/01_raw/shuttles.csv"
"""
MODEL_INPUT = """
[catalog.model_input_table]
path = "data/03_primary/model_input_table.parquet"
"""
METRICS = """
[catalog.metrics]
path = "data/08_reporting/metrics.json"
"""
UPSTREAM = {"preprocess_companies", "create_model_input_table"}
DOWNSTREAM = {"split", "train_model", "evaluate"}


class Spaceflights:
    @hookimpl
    def stagekit_register_stages(self, register: Any) -> None:
        for st in s.SPACEFLIGHTS:
            register(st)


def spaceflights(folder: Path, *, model_input: bool = True) -> Path:
    raw = folder / "data" / "01_raw"
    raw.mkdir(parents=True)
    COMPANIES.to_csv(raw / "companies.csv", index=False)
    SHUTTLES.to_csv(raw / "shuttles.csv", index=False)
    path = folder / "pipeline.toml"
    path.write_text(FILE + (MODEL_INPUT if model_input else "") + METRICS)
    return path


def load(path: Path, executor: str = "sequential", **options: Any) -> Any:
    return load_pipeline(path, host=Host.isolated(Spaceflights()), executor=executor, **options)


def test_spaceflights_run_then_from_the_model_input_stage_alone(tmp_path: Path, executor: str) -> None:
    path = spaceflights(tmp_path / "project")
    data = path.parent / "data"
    whole = load(path, executor).run()
    assert s.statuses(whole) == dict.fromkeys([*UPSTREAM, *DOWNSTREAM], "ok")
    metrics = json.loads((data / "08_reporting" / "metrics.json").read_text())
    assert metrics == whole.artifacts["metrics"] and metrics["test_rows"] == 2
    assert (data / "03_primary" / "model_input_table.parquet").exists()
    assert (path.parent / ".stagekit" / "runs.sqlite").exists()  # [pipeline] workspace = "."

    for raw in (data / "01_raw").iterdir():
        raw.unlink()  # what the selection does not need is not read: the raw data can go
    alone = load(path, executor, from_stages=["split"])
    assert [st.name for st in alone.pipeline.stages] == ["split", "train_model", "evaluate"]
    assert not alone.pipeline.from_store
    assert sorted(n for n, v in alone.artifacts.items() if isinstance(v, CatalogInput)) == ["model_input_table"]
    same = alone.run()
    assert s.statuses(same) == dict.fromkeys(DOWNSTREAM, "cached")  # the parquet file reads back the same table
    assert same.artifacts["metrics"] == metrics

    bigger = load(path, executor, from_stages=["split"], params={"split": {"test_size": 0.5}}).run()
    assert s.statuses(bigger) == dict.fromkeys(DOWNSTREAM, "ok")
    assert s.reasons(bigger)["split"] == "param test_size 0.25 → 0.5"
    assert bigger.artifacts["metrics"]["test_rows"] == 4
    assert json.loads((data / "08_reporting" / "metrics.json").read_text()) == bigger.artifacts["metrics"]


def test_from_stages_takes_what_the_catalog_does_not_hold_from_the_store(tmp_path: Path, executor: str) -> None:
    path = spaceflights(tmp_path / "project", model_input=False)
    whole = load(path, executor).run()
    assert s.ran(whole) == UPSTREAM | DOWNSTREAM
    assert not (path.parent / "data" / "03_primary").exists()  # not in the catalog: only in the run store

    narrowed = load(path, executor, from_stages=["split"], params={"split": {"test_size": 0.5}})
    assert narrowed.pipeline.from_store == UPSTREAM
    assert narrowed.check().ok
    plan = {p.stage: p.action for p in narrowed.explain()}
    assert plan == {**dict.fromkeys(UPSTREAM, "cached"), **dict.fromkeys(DOWNSTREAM, "run")}
    result = narrowed.run()
    assert s.statuses(result) == {**dict.fromkeys(UPSTREAM, "cached"), **dict.fromkeys(DOWNSTREAM, "ok")}
    assert s.reasons(result)["create_model_input_table"] == f"cached from run {whole.run_id}"
    assert result.artifacts["metrics"]["test_rows"] == 4
    pd.testing.assert_frame_equal(result.artifacts["model_input_table"], whole.artifacts["model_input_table"])


def test_from_stages_in_an_empty_workspace_is_refused_naming_what_is_missing(tmp_path: Path) -> None:
    path = spaceflights(tmp_path / "project", model_input=False)
    marker = tmp_path / "split-ran"
    narrowed = load(path, from_stages=["split"], params={"split": {"marker": str(marker)}})
    problems = narrowed.check().problems  # check says it too, reading no data
    assert len(problems) == 2, problems
    assert problems[0].startswith("'preprocessed_companies' must come from the run store (stage "
                                  "'preprocess_companies', which produces it, is not selected)"), problems
    assert problems[1].startswith("'model_input_table' must come from the run store (stage "
                                  "'create_model_input_table', which produces it, is not selected)"), problems
    with pytest.raises(MissingInputError) as info:
        narrowed.run()
    err = info.value
    assert (err.artifact, err.stage) == ("preprocessed_companies", "preprocess_companies")
    assert str(err) == problems[0] and err.reason == "no earlier run"
    assert "--from preprocess_companies" in str(err)
    assert not marker.exists()  # no stage ran
    assert RunDatabase.in_workspace(path.parent).runs() == []  # no run began
    assert not (path.parent / "data" / "08_reporting").exists()


def test_a_stage_missing_from_the_store_after_a_missing_upstream_is_not_blamed_on_a_codec(tmp_path: Path) -> None:
    path = spaceflights(tmp_path / "project", model_input=False)
    plans = {p.stage: p for p in load(path, from_stages=["split"]).explain()}
    assert plans["create_model_input_table"].action == "missing"
    assert "codec" not in plans["create_model_input_table"].reason


def test_explain_predicts_what_a_param_change_reruns(tmp_path: Path, executor: str) -> None:
    path = spaceflights(tmp_path / "project")
    load(path, executor).run()
    assert {p.action for p in load(path, executor).explain()} == {"cached"}
    changed = load(path, executor, params={"train_model": {"scale": 2.0}})
    plans = changed.explain()
    assert [(p.stage, p.action) for p in plans] == [
        ("preprocess_companies", "cached"), ("create_model_input_table", "cached"), ("split", "cached"),
        ("train_model", "run"), ("evaluate", "run")]
    assert plans[3].reason == "param scale 1.0 → 2.0"
    assert all(p.saved > 0 for p in plans if p.action == "cached")
    result = changed.run()
    assert s.statuses(result) == {p.stage: {"run": "ok", "cached": "cached"}[p.action] for p in plans}
    assert {p.action for p in changed.explain()} == {"cached"}  # now stored too


def test_a_failed_stage_in_a_pipeline_file_run_keeps_what_finished_for_the_next(tmp_path: Path) -> None:
    path = spaceflights(tmp_path / "project")
    with pytest.raises(StageError):
        load(path, params={"split": {"test_size": 2.0}}).run()  # split refuses it
    fixed = load(path).run()
    assert s.statuses(fixed) == {**dict.fromkeys(UPSTREAM, "cached"), **dict.fromkeys(DOWNSTREAM, "ok")}

