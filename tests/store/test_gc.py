"""Garbage collection of the object store that snapshots and the run store share (``stagekit.store.gc``).

Real workspaces: objects written by ``ArtifactStore.put``, runs recorded in a real run database, snapshots of
real files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import pytest

from stagekit.errors import RunStoreError, SnapshotError, WorkspaceLockedError
from stagekit.snapshots import snapshot
from stagekit.snapshots.store import Store
from stagekit.store.artifacts import ArtifactStore, StoredArtifact
from stagekit.store.builtin_codecs import builtin_codec_table
from stagekit.store.gc import GcResult, collect, existing_database, run_store_references
from stagekit.store.rundb import RunDatabase, StageRun
from stagekit.workspace import Workspace
from store_tools import stored_at, stored_files

LONG_AGO = 1_000_000.0  # seconds before now: older than any run a test records


def put(ws: Workspace, value: object, *, age: float | None = LONG_AGO) -> StoredArtifact:
    """Store ``value`` as a run would; its object last touched ``age`` seconds ago (None: now)."""
    stored = ArtifactStore(ws.root, builtin_codec_table()).put(value)
    if age is not None:
        touch(ws, stored.object, time.time() - age)
    return stored


def touch(ws: Workspace, digest: str, when: float) -> None:
    os.utime(stored_at(ws, digest), (when, when))


def record(ws: Workspace, outputs: Mapping[str, StoredArtifact], *, ended: bool = True,
           started: float | None = None) -> str:
    """A run of one stage that stored ``outputs``; left running (this process: alive) unless ``ended``."""
    db = RunDatabase.in_workspace(ws.root)
    run_id = db.begin_run(pipeline="demo", started=started)
    db.record_stages(run_id, [StageRun("make", "ok", outputs={k: v.to_json() for k, v in outputs.items()})])
    if ended:
        db.end_run(run_id, "ok")
    db.close()
    return run_id


def digests(ws: Workspace) -> set[str]:
    return {p.name for p in stored_files(ws)}


def snap(ws: Workspace, name: str, text: str) -> str:
    """A snapshot of one file holding ``text``; returns its content's digest (made old, like the runs')."""
    (ws.data_dir / name).write_text(text)
    digest = ws.create_snapshot(name, [f"data/{name}"]).snapshot.files[0].hash
    touch(ws, digest, time.time() - LONG_AGO)
    return digest


# --- the snapshot layer, told what the runs hold ----------------------------------------------------------


def test_snapshot_gc_and_delete_keep_what_runs_recorded(ws: Workspace) -> None:
    recorded = put(ws, {"rows": [1, 2, 3]})
    record(ws, {"table": recorded})
    stray = put(ws, "nothing names me")
    held = snap(ws, "a", "a snapshot's file")
    shared = snap(ws, "b", "in a snapshot and a run")
    record(ws, {"also": StoredArtifact("fp", shared, "stagekit.json", 1)})
    assert snapshot.gc(ws, keep=lambda: run_store_references(ws)) == (1, stray.size)
    assert digests(ws) == {recorded.object, held, shared}
    got = snapshot.delete(ws, "b", keep=lambda: run_store_references(ws))
    assert (got.objects_removed, got.bytes_freed) == (0, 0)  # its content is a run's too
    assert digests(ws) == {recorded.object, held, shared}
    assert ws.delete_snapshot("a").objects_removed == 1
    assert ws.gc() == (0, 0) and digests(ws) == {recorded.object, shared}


def test_without_keep_the_snapshot_layer_removes_every_object_no_manifest_names(ws: Workspace) -> None:
    record(ws, {"table": put(ws, [1, 2])})  # what the snapshot layer alone cannot know about
    assert snapshot.gc(ws)[0] == 1 and digests(ws) == set()


def test_remove_unreferenced_spares_what_was_touched_since(ws: Workspace) -> None:
    old, recent = put(ws, "old"), put(ws, "recent", age=None)
    since = time.time() - 60
    got = Store(ws).remove_unreferenced(set(), spare_since=since)
    assert (got.removed, got.spared, got.freed) == (1, 1, old.size)
    assert digests(ws) == {recent.object}


def test_a_run_database_that_cannot_be_read_stops_delete_and_gc_before_anything_goes(ws: Workspace) -> None:
    held = snap(ws, "a", "kept")
    stray = put(ws, "stray")
    (ws.state_dir / "runs.sqlite").write_bytes(b"not a database" * 100)
    for attempt in (lambda: ws.delete_snapshot("a"), ws.gc, lambda: collect(ws, 1)):
        with pytest.raises(RunStoreError, match=r"runs\.sqlite"):
            attempt()
    assert digests(ws) == {held, stray.object} and [s.name for s in ws.snapshots()] == ["a"]


# --- run_store_references -----------------------------------------------------------------------------


def test_references_without_a_run_database_are_none_and_create_none(ws: Workspace) -> None:
    before = time.time()
    referenced, since = run_store_references(ws.root)
    assert referenced == set() and before <= since <= time.time()
    assert not (ws.state_dir / "runs.sqlite").exists() and existing_database(ws) is None


def test_references_are_every_runs_outputs_and_the_oldest_running_runs_start(ws: Workspace) -> None:
    a, b = put(ws, "a"), put(ws, "b")
    record(ws, {"a": a})
    before = time.time()
    referenced, since = run_store_references(ws)
    assert referenced == {a.object} and before <= since <= time.time()  # none running: since it began
    started = time.time() - 300
    record(ws, {"b": b}, ended=False, started=started)
    assert run_store_references(ws) == ({a.object, b.object}, started)


# --- collect: stagekit store gc ------------------------------------------------------------------------


def test_collect_keeping_one_run_removes_only_the_older_runs_objects(ws: Workspace) -> None:
    only_old, both = put(ws, {"only": "old"}), put(ws, {"in": "both"})
    in_snapshot = snap(ws, "golden", "held by a snapshot")
    old = record(ws, {"x": only_old, "y": both, "z": StoredArtifact("fp", in_snapshot, "stagekit.json", 18)})
    newest = put(ws, {"only": "new"})
    new = record(ws, {"y": both, "w": newest})
    got = collect(ws.root, keep_runs=1)
    assert got == GcResult(runs_deleted=1, objects_removed=1, bytes_freed=only_old.size)
    assert digests(ws) == {both.object, in_snapshot, newest.object}
    db = RunDatabase.in_workspace(ws.root)
    assert [r.run_id for r in db.runs()] == [new] and old not in {r.run_id for r in db.runs(None)}
    assert ws.verify_snapshot("golden").ok


def test_collect_by_default_keeps_every_run_and_removes_what_none_names(ws: Workspace) -> None:
    kept = [put(ws, n) for n in ("one", "two")]
    for stored in kept:
        record(ws, {"n": stored})
    stray = put(ws, "stray")
    assert ws.store_gc() == GcResult(0, 1, stray.size)
    assert digests(ws) == {s.object for s in kept}
    assert len(ws.runs()) == 2
    assert collect(ws, 0) == GcResult(2, 2, sum(s.size for s in kept)) and digests(ws) == set()


def test_what_was_touched_after_a_running_run_began_survives(ws: Workspace) -> None:
    started = time.time() - 600
    reused = put(ws, "reused")
    old_run = record(ws, {"r": reused}, started=started - 10)
    running = record(ws, {}, ended=False, started=started)  # before the last one: yet it stays
    done = put(ws, "done")
    record(ws, {"done": done})
    before, after = put(ws, "before it began"), put(ws, "after it began")
    touch(ws, before.object, started - 1)
    touch(ws, after.object, started + 1)  # the running run may be about to record this one
    put(ws, "reused", age=None)  # a run reusing an object refreshes its time
    got = collect(ws, keep_runs=1)
    assert (got.runs_deleted, got.objects_removed, got.bytes_freed) == (1, 1, before.size)
    assert digests(ws) == {after.object, reused.object, done.object}
    remaining = {r.run_id for r in ws.runs(None)}
    assert running in remaining and old_run not in remaining


def test_collect_removes_the_run_stores_leftover_temporaries(ws: Workspace) -> None:
    tmp = ws.tmp_dir / "runs"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "crashed").write_bytes(b"x" * 100)
    os.utime(tmp / "crashed", (time.time() - LONG_AGO,) * 2)
    record(ws, {}, ended=False, started=time.time() - 60)
    (tmp / "being-written").write_bytes(b"y" * 10)  # by the run still running
    snapshot_tmp = ws.tmp_dir / "123-abcd-0"  # a crashed snapshot creation's: swept as snapshot gc sweeps it
    snapshot_tmp.write_bytes(b"z")
    assert collect(ws) == GcResult(0, 0, 100, temporaries_removed=1)
    assert sorted(p.name for p in tmp.iterdir()) == ["being-written"]
    assert not snapshot_tmp.exists()


def test_collect_with_a_damaged_manifest_deletes_no_run_and_no_object(ws: Workspace) -> None:
    record(ws, {"a": put(ws, "a")})
    record(ws, {"b": put(ws, "b")})
    put(ws, "stray")
    (ws.snapshots_dir / "bad.json").write_text("{not json")
    with pytest.raises(SnapshotError, match="damaged"):
        collect(ws, keep_runs=0)
    assert len(ws.runs()) == 2 and len(digests(ws)) == 3


def test_collect_waits_for_the_write_lock_like_snapshot_gc(ws: Workspace) -> None:
    with ws.lock("write", purpose="creating snapshot 'x'"), pytest.raises(WorkspaceLockedError,
                                                                          match=r"creating snapshot 'x'"):
        collect(ws)


def test_collect_refuses_a_negative_count(ws: Workspace) -> None:
    with pytest.raises(ValueError, match="keep_runs must be 0 or more, not -1"):
        collect(ws, -1)


def test_collect_in_a_workspace_without_runs_creates_no_database(ws: Workspace) -> None:
    stray = put(ws, "stray")
    assert collect(ws, keep_runs=3) == GcResult(0, 1, stray.size)
    assert not (ws.state_dir / "runs.sqlite").exists()
