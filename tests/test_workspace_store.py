"""The workspace's front door to the run store: ``Workspace.load`` and ``runs``, snapshot deletions that leave
the runs' artifacts alone, ``Workspace.store_gc``, and ``stagekit store gc`` through ``stagekit.cli.main``."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pytest

from stagekit import Host
from stagekit.cli import main
from stagekit.errors import CorruptObjectError, RunStoreError
from stagekit.store.artifacts import ArtifactStore, StoredArtifact
from stagekit.store.builtin_codecs import builtin_codec_table
from stagekit.store.gc import GcResult
from stagekit.store.rundb import RunDatabase, StageRun
from stagekit.workspace import Workspace
from store_tools import overwrite_stored, stored_at, stored_files

LONG_AGO = 1_000_000.0


def put(ws: Workspace, value: object) -> StoredArtifact:
    """Store ``value`` as a run would, its object made old (untouched since long before any run here)."""
    stored = ArtifactStore(ws.root, builtin_codec_table()).put(value)
    when = time.time() - LONG_AGO
    os.utime(stored_at(ws, stored.object), (when, when))
    return stored


def record(ws: Workspace, outputs: Mapping[str, StoredArtifact | None], stage: str = "make") -> str:
    db = RunDatabase.in_workspace(ws.root)
    run_id = db.begin_run(pipeline="demo")
    db.record_stages(run_id, [StageRun(stage, "ok", outputs={k: None if v is None else v.to_json()
                                                             for k, v in outputs.items()})])
    db.end_run(run_id, "ok")
    db.close()
    return run_id


def digests(ws: Workspace) -> set[str]:
    return {p.name for p in stored_files(ws)}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"ticker": ["A", "B", "C"], "close": [1.5, float("nan"), 3.25]},
                        index=pd.Index([10, 20, 30], name="day"))


# --- Workspace.load and runs ----------------------------------------------------------------------------


def test_load_gives_back_the_stored_value_of_the_latest_run_or_of_a_given_one(
    ws: Workspace, frame: pd.DataFrame
) -> None:
    first = record(ws, {"features": put(ws, frame), "meta": put(ws, {"top_n": 20, "names": ["a", "b"]})})
    changed = frame.assign(close=frame["close"] * 2)
    second = record(ws, {"features": put(ws, changed), "skipped": None})
    third = record(ws, {"other": put(ws, [1, 2, 3])}, stage="elsewhere")  # stores no "features"
    pd.testing.assert_frame_equal(ws.load("features"), changed)  # the newest run that stored it
    pd.testing.assert_frame_equal(ws.load("features", run=first), frame)
    pd.testing.assert_frame_equal(ws.load("features", run=second[:6]), changed)  # a prefix only it has
    assert ws.load("meta") == {"top_n": 20, "names": ["a", "b"]}
    assert ws.load("other", run="latest") == [1, 2, 3] == ws.load("other", run=third)
    assert ws.load("meta", host=Host.isolated()) == {"top_n": 20, "names": ["a", "b"]}
    assert [r.run_id for r in ws.runs()] == [third, second, first] and [r.run_id for r in ws.runs(1)] == [third]


def test_load_of_what_is_not_stored_says_what_is(ws: Workspace) -> None:
    with pytest.raises(RunStoreError, match=r"no stored artifact 'features': no run is recorded in workspace"):
        ws.load("features")
    assert ws.runs() == [] and not (ws.state_dir / "runs.sqlite").exists()  # reading creates no database
    run_id = record(ws, {"prices": put(ws, [1.0]), "weights": put(ws, {"a": 1}), "skipped": None})
    with pytest.raises(RunStoreError, match=rf"no stored artifact 'features' in any run: the latest, {run_id}, "
                                            r"stored 'prices', 'weights'"):
        ws.load("features")
    with pytest.raises(RunStoreError, match=rf"no stored artifact 'skipped' in run {run_id}: it stored "
                                            r"'prices', 'weights'"):
        ws.load("skipped", run=run_id)
    with pytest.raises(RunStoreError, match=r"no run 'nosuchrun'"):
        ws.load("prices", run="nosuchrun")


def test_load_of_a_corrupted_object_names_it_and_never_returns_it(ws: Workspace, frame: pd.DataFrame) -> None:
    stored, meta = put(ws, frame), put(ws, {"k": "v"})
    run_id = record(ws, {"features": stored, "meta": meta})
    path = stored_at(ws, stored.object)
    overwrite_stored(ws, stored.object, b"garbage!", at=100)  # chmod u+w, then bytes overwritten in place
    with pytest.raises(CorruptObjectError, match=rf"artifact 'features' of run {run_id} \(stage 'make'\).*"
                                                 rf"{re.escape(str(path))} of artifact 'features' is corrupt") as info:
        ws.load("features")
    assert info.value.path == str(path) and info.value.digest == stored.object
    overwrite_stored(ws, meta.object, b"[")  # the codec's read fails: the digest says why
    with pytest.raises(CorruptObjectError, match=r"artifact 'meta' is corrupt: its bytes now hash to"):
        ws.load("meta")
    assert not os.path.exists(path)  # a corrupt object is removed when found: its stage's next run rewrites it
    with pytest.raises(CorruptObjectError, match=rf"{re.escape(str(path))} of artifact 'features' is missing"):
        ws.load("features", run=run_id)


# --- snapshot deletions keep the runs' artifacts --------------------------------------------------------


def test_snapshot_delete_and_gc_keep_the_runs_artifacts(ws: Workspace, frame: pd.DataFrame) -> None:
    stored = put(ws, frame)
    record(ws, {"features": stored})
    stray = put(ws, "no one names this")
    (ws.data_dir / "raw.csv").write_text("a,b\n1,2\n")
    ws.create_snapshot("golden", ["data"])
    raw = ws.snapshot("golden").files[0]
    got = ws.delete_snapshot("golden")  # its file and the stray object, not the run's frame
    assert (got.objects_removed, got.bytes_freed) == (2, raw.size + stray.size)
    assert ws.gc() == (0, 0)
    assert digests(ws) == {stored.object}
    pd.testing.assert_frame_equal(ws.load("features"), frame)


def test_store_gc_keeps_the_last_runs_and_what_snapshots_hold(ws: Workspace) -> None:
    (ws.data_dir / "raw.csv").write_text("x\n1\n")
    held = ws.create_snapshot("golden", ["data"]).snapshot.files[0].hash
    old = put(ws, {"v": 1})
    record(ws, {"v": old, "raw": StoredArtifact("fp", held, "stagekit.json", 4)})
    new = put(ws, {"v": 2})
    latest = record(ws, {"v": new})
    assert ws.store_gc(keep_runs=1) == GcResult(1, 1, old.size)
    assert digests(ws) == {held, new.object} and [r.run_id for r in ws.runs()] == [latest]
    assert ws.load("v") == {"v": 2} and ws.verify_snapshot("golden").ok


# --- the CLI ------------------------------------------------------------------------------------------


def test_cli_store_gc_keeps_the_last_runs(ws: Workspace, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    big = put(ws, "x" * 5000)
    record(ws, {"a": big})
    record(ws, {"a": put(ws, "small")})
    last = put(ws, {"last": True})
    record(ws, {"b": last})
    stray = put(ws, "stray")
    assert cli(capsys, "--workspace", str(ws.root), "store", "gc") == (
        0, f"removed 0 runs, 1 object, {stray.size} B freed\n", "")
    monkeypatch.chdir(ws.root)
    code, out, err = cli(capsys, "store", "gc", "--keep-runs", "1")
    assert (code, out, err) == (0, "removed 2 runs, 2 objects, 4.9 KiB freed\n", "")
    assert digests(ws) == {last.object}
    assert cli(capsys, "store", "gc", "--keep-runs", "1", "--workspace", str(ws.root), "--wait", "0.5") == (
        0, "removed 0 runs, 0 objects, 0 B freed\n", "")


def test_cli_store_gc_errors_are_one_line_and_exit_1(ws: Workspace, capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Any) -> None:
    record(ws, {"a": put(ws, "kept")})
    with ws.lock("write", purpose="creating snapshot 'big'"):
        code, out, err = cli(capsys, "--workspace", str(ws.root), "store", "gc")
    assert (code, out) == (1, "") and err.count("\n") == 1
    assert err.startswith("stagekit: error: the workspace ") and "creating snapshot 'big'" in err
    (ws.state_dir / "runs.sqlite").write_bytes(b"not a database" * 100)
    code, out, err = cli(capsys, "store", "gc", "--workspace", str(ws.root))
    assert (code, out) == (1, "") and err.count("\n") == 1 and "runs.sqlite is corrupt" in err
    assert len(digests(ws)) == 1
    code, out, err = cli(capsys, "store", "gc", "--workspace", str(tmp_path / "missing"))
    assert code == 1 and err.startswith("stagekit: error: workspace ") and "does not exist" in err
    with pytest.raises(SystemExit) as exited:  # a bad count is a usage error, as argparse reports them
        main(["store", "gc", "--keep-runs", "-2"])
    assert exited.value.code == 2 and "0 or more, not '-2'" in capsys.readouterr().err


def test_cli_snapshot_delete_and_gc_keep_the_runs_artifacts(ws: Workspace, capsys: pytest.CaptureFixture[str],
                                                            frame: pd.DataFrame) -> None:
    stored = put(ws, frame)
    record(ws, {"features": stored})
    (ws.data_dir / "raw.csv").write_text("a\n1\n")
    assert cli(capsys, "--workspace", str(ws.root), "snapshot", "create", "s", str(ws.data_dir))[0] == 0
    code, out, _ = cli(capsys, "--workspace", str(ws.root), "snapshot", "delete", "s")
    assert code == 0 and "removed 1 stored contents" in out
    assert cli(capsys, "--workspace", str(ws.root), "snapshot", "gc") == (
        0, "removed 0 stored contents no snapshot uses (0 B freed)\n", "")
    assert digests(ws) == {stored.object}
    pd.testing.assert_frame_equal(ws.load("features"), frame)
