"""Incremental runs when things go wrong (issue 14, item 7): a corrupted or deleted stored object, kill -9 in
the middle of a run, a failed run fixed, two runs at once in one workspace, a really full disk. Real files, a
real SQLite database and real processes; the full disk is a small tmpfs in a private mount namespace."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import incremental_samples as s
import pytest

from stagekit import PipelineWarning, StageError
from stagekit.store.rundb import RunDatabase
from store_tools import unshare_or_skip

SHIFTED = {"shift": {"offset": 2}}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def fresh(tmp_path: Path, stages: list[Any], artifacts: dict[str, Any], **options: Any) -> dict[str, Any]:
    """What an uninterrupted run in a workspace of its own gives."""
    other = tmp_path / f"fresh-{len(list(tmp_path.glob('fresh-*')))}"
    other.mkdir()
    return s.values(s.run(stages, artifacts, other, **options))


def corrupt(path: Path) -> None:
    """Other bytes of the same size (a size check alone cannot see it), as a bad disk or a user would leave."""
    os.chmod(path, 0o644)  # objects are read-only
    data = path.read_bytes()
    path.write_bytes(bytes(b ^ 0x01 for b in data[:1]) + data[1:])


def caught(run: Any) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        result = run()
    return result, [str(w.message) for w in found if issubclass(w.category, PipelineWarning)]


# --- a corrupted or deleted object --------------------------------------------------------------------------


def test_a_corrupted_object_is_named_and_its_stage_runs_again(tmp_path: Path, root: Path, executor: str) -> None:
    first = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)
    obj = s.object_path(root, first.stages["scale"].stored["a"])
    corrupt(obj)
    result, found = caught(lambda: s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor, params=SHIFTED))
    assert len(found) == 1 and str(obj) in found[0] and "of artifact 'a' is corrupt" in found[0], found
    assert found[0].endswith("stage 'scale' runs again")
    assert s.statuses(result) == {"scale": "ok", "side": "cached", "shift": "ok", "square": "ok", "combine": "ok"}
    assert result.stages["scale"].reason == f"its stored output was corrupt ({obj})"
    assert s.values(result) == fresh(tmp_path, s.CHAIN, s.CHAIN_INPUTS, params=SHIFTED)


def test_a_stage_run_again_over_a_corrupted_object_repairs_the_store(root: Path) -> None:
    first = s.run(s.CHAIN, s.CHAIN_INPUTS, root)
    corrupt(s.object_path(root, first.stages["scale"].stored["a"]))
    caught(lambda: s.run(s.CHAIN, s.CHAIN_INPUTS, root, params=SHIFTED))  # scale runs again, stores a again
    again, found = caught(lambda: s.run(s.CHAIN, s.CHAIN_INPUTS, root, params={"shift": {"offset": 3}}))
    assert found == [] and again.stages["scale"].status == "cached"
    assert s.mismatched_objects(root) == []


def test_a_corrupted_object_of_a_final_artifact_in_a_fully_cached_run(root: Path) -> None:
    first = s.run(s.CHAIN, s.CHAIN_INPUTS, root)
    obj = s.object_path(root, first.stages["combine"].stored["out"])
    corrupt(obj)

    def run_and_read() -> Any:
        return s.run(s.CHAIN, s.CHAIN_INPUTS, root).artifacts["out"]

    out, found = caught(run_and_read)
    assert out == s.CHAIN_OUT
    assert len(found) == 1 and str(obj) in found[0]


def test_a_deleted_object_makes_its_stage_run_again(tmp_path: Path, root: Path, executor: str) -> None:
    first = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)
    stored = first.stages["shift"].stored["b"]
    s.object_path(root, stored).unlink()
    again = s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)
    assert s.statuses(again) == {"scale": "cached", "side": "cached", "shift": "ok", "square": "cached",
                                 "combine": "cached"}  # the same value again: downstream reused
    assert again.stages["shift"].reason == f"the stored output 'b' is gone (object {stored.object[:12]}...)"
    assert s.values(again) == s.values(first) == fresh(tmp_path, s.CHAIN, s.CHAIN_INPUTS)
    assert s.object_path(root, stored).exists() and s.mismatched_objects(root) == []  # stored again
    assert s.statuses(s.run(s.CHAIN, s.CHAIN_INPUTS, root, executor=executor)) == dict.fromkeys(
        ["scale", "side", "shift", "square", "combine"], "cached")


# --- kill -9 in the middle of a run, then a run again -----------------------------------------------------------


def test_kill_9_in_the_middle_then_a_run_again_redoes_only_what_did_not_finish(
        tmp_path: Path, root: Path, executor: str) -> None:
    killed = s.run_killed(root, executor)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    db = RunDatabase.in_workspace(root)
    (crashed,) = db.runs()
    assert crashed.status == "crashed"
    assert [(st.stage, st.status) for st in db.stage_runs(crashed.run_id)] == [("first", "ok"), ("second", "ok")]
    again = s.run(s.KILLED, {"n": 3}, root, executor=executor)
    assert s.statuses(again) == {"first": "cached", "second": "cached", "third": "ok", "fourth": "ok"}
    assert again.stages["first"].reason == f"cached from run {crashed.run_id}"
    assert s.values(again) == fresh(tmp_path, s.KILLED, {"n": 3})
    assert s.mismatched_objects(root) == []
    assert sqlite3.connect(db.path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize("kind", ["sequential", "thread", "process"])
def test_ctrl_c_in_the_middle_then_a_run_again_redoes_only_what_did_not_finish(
        tmp_path: Path, root: Path, kind: str) -> None:
    marker = tmp_path / "third-started"
    proc = subprocess.Popen([sys.executable, "-c", s.INTERRUPT_SCRIPT, str(root), kind], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=s.subprocess_env(**{s.PAUSE_ENV: str(marker)}))
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), proc.communicate(timeout=10)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    db = RunDatabase.in_workspace(root)
    (stopped,) = db.runs()
    assert stopped.status == "interrupted"
    recorded = {st.stage: st.status for st in db.stage_runs(stopped.run_id)}
    assert (recorded["first"], recorded["second"]) == ("ok", "ok") and recorded.get("third") != "ok"
    again = s.run(s.PAUSED, {"n": 3}, root, executor=kind)
    assert s.statuses(again) == {"first": "cached", "second": "cached", "third": "ok", "fourth": "ok"}
    assert s.values(again) == fresh(tmp_path, s.PAUSED, {"n": 3})


# --- a failed run, fixed -------------------------------------------------------------------------------------


def test_a_failed_run_then_fixed_runs_only_the_failed_stage_and_downstream(
        tmp_path: Path, root: Path, executor: str) -> None:
    with pytest.raises(StageError) as info:
        s.run(s.FRAGILE, {"n": 3}, root, executor=executor)
    assert info.value.stage == "fragile"
    db = RunDatabase.in_workspace(root)
    assert db.run("latest").status == "failed"
    assert [(st.stage, st.status) for st in db.stage_runs(db.run("latest").run_id)] == [
        ("scale", "ok"), ("shift", "ok"), ("fragile", "failed"), ("after_fragile", "cancelled")]
    good = {"fragile": {"mode": "good"}}
    fixed = s.run(s.FRAGILE, {"n": 3}, root, executor=executor, params=good)
    assert s.statuses(fixed) == {"scale": "cached", "shift": "cached", "fragile": "ok", "after_fragile": "ok"}
    assert s.values(fixed) == fresh(tmp_path, s.FRAGILE, {"n": 3}, params=good)
    assert fixed.artifacts["final"] == 22


# --- two runs at once in one workspace ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sequential", "process"])
def test_two_runs_at_once_in_one_workspace_both_succeed_and_are_both_recorded(
        tmp_path: Path, root: Path, kind: str) -> None:
    procs = [s.run_in_subprocess("CONCURRENT", {"n": 10}, root, kind) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    results = [json.loads(out) for out, _ in outs]
    expected = fresh(tmp_path, s.CONCURRENT, {"n": 10})
    assert [r["values"] for r in results] == [expected, expected]
    db = RunDatabase.in_workspace(root)
    runs = db.runs()
    assert sorted(r.run_id for r in runs) == sorted(r["run_id"] for r in results)
    assert [r.status for r in runs] == ["ok", "ok"]
    for run in runs:
        assert sorted(st.stage for st in db.stage_runs(run.run_id)) == ["halve", "sleepy", "sleepy_sum"]
        assert {st.status for st in db.stage_runs(run.run_id)} <= {"ok", "cached"}
    assert sqlite3.connect(db.path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert s.mismatched_objects(root) == []
    assert os.listdir(root / ".stagekit" / "tmp" / "runs") == []  # no temporary left behind
    third = s.run(s.CONCURRENT, {"n": 10}, root, executor=kind)
    assert set(s.statuses(third).values()) == {"cached"}
    assert s.values(third) == expected


# --- a really full disk -------------------------------------------------------------------------------------

FULL = textwrap.dedent("""
    import contextlib, json, os, subprocess, sys
    mnt = sys.argv[1]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], check=True)
    import incremental_samples as s
    from stagekit import StagekitError
    from stagekit.store.rundb import RunDatabase

    root = os.path.join(mnt, "ws")
    os.mkdir(root)
    out = {}

    def attempt(name, **params):
        try:
            s.run(s.BIG, {"n": 3}, root, params={"make_big": params})
            out[name] = "no error"
        except StagekitError as exc:
            out[name] = [type(exc).__name__, str(exc), exc.result is not None and s.statuses(exc.result)]

    out["small"] = s.statuses(s.run(s.BIG, {"n": 3}, root))  # 1000 floats: 8 kB
    # fill the disk, leaving 256 kB: room for the run's records, not for 1.2 MB of floats
    with open(os.path.join(mnt, "filler"), "wb", buffering=0) as f, contextlib.suppress(OSError):
        while os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize > 256 * 1024:
            f.write(b"0" * 4096)
    attempt("frame", size=150_000)
    attempt("array", size=150_000, kind="array")
    db = RunDatabase.in_workspace(root)
    out["runs"] = [[r.status, dict((st.stage, st.status) for st in db.stage_runs(r.run_id))] for r in db.runs()]
    db.close()
    out["integrity"] = s.python("import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("
                                "'PRAGMA integrity_check').fetchone()[0])", str(db.path)).stdout.strip()
    out["mismatched"] = s.mismatched_objects(root)
    out["tmp"] = os.listdir(os.path.join(root, ".stagekit", "tmp", "runs"))
    os.unlink(os.path.join(mnt, "filler"))
    big = {"make_big": {"size": 150_000}}
    again = s.run(s.BIG, {"n": 3}, root, params=big)
    out["again"] = [s.statuses(again), again.artifacts["big_sum"] > 0]
    out["cached"] = s.statuses(s.run(s.BIG, {"n": 3}, root, params=big))
    out["mismatched_after"] = s.mismatched_objects(root)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs in a workspace on a 2 MiB tmpfs (a private mount namespace): one that fits, then, with the disk
    filled to 256 kB, one whose 1.2 MB output (a DataFrame, then a numpy array) does not, then one after the
    space is freed."""
    unshare = unshare_or_skip()
    mnt = tmp_path_factory.mktemp("full") / "mnt"
    mnt.mkdir()
    proc = subprocess.run([unshare, "-rm", sys.executable, "-c", FULL, str(mnt)], capture_output=True, text=True,
                          timeout=120, env=s.subprocess_env(), check=False)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_a_full_disk_fails_the_run_naming_the_artifact_and_leaves_the_store_consistent(
        full_disk: dict[str, Any]) -> None:
    out = full_disk
    assert out["small"] == {"scale": "ok", "make_big": "ok", "value_sum": "ok"}
    kind, message, statuses = out["frame"]
    assert kind == "RunStoreError", message
    assert message.startswith("stage 'make_big' ran, but its output 'big' could not be stored: cannot store "
                              "artifact 'big' in "), message
    assert "the disk is full" in message and "free some space, or run with --no-cache" in message
    assert statuses["scale"] == "cached" and statuses["value_sum"] == "cancelled"
    assert len(out["runs"]) == 3 and out["runs"][-1][0] == "ok"  # the database opens and lists every run
    assert [r[1]["scale"] for r in out["runs"][:2]] == ["cached", "cached"]
    assert out["integrity"] == "ok"
    assert out["mismatched"] == [] and out["tmp"] == []  # no half object, no temporary left behind
    assert out["again"] == [{"scale": "cached", "make_big": "ok", "value_sum": "ok"}, True]  # space freed: it works
    assert out["cached"] == {"scale": "cached", "make_big": "cached", "value_sum": "cached"}
    assert out["mismatched_after"] == []


def test_a_run_failed_by_a_full_disk_is_recorded_as_failed(full_disk: dict[str, Any]) -> None:
    status, stages = full_disk["runs"][1]  # the DataFrame's run
    assert full_disk["frame"][2]["make_big"] == "failed"
    assert (status, stages["make_big"]) == ("failed", "failed")


def test_a_numpy_array_on_a_full_disk_says_the_disk_is_full(full_disk: dict[str, Any]) -> None:
    kind, message, _ = full_disk["array"]
    assert kind == "RunStoreError" and "output 'big' could not be stored" in message
    assert "the disk is full" in message
