"""Immutable workspace snapshots: the original bug, tampering, crashes, full disks, races and bad input."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagekit.errors import (
    SnapshotCorruptError,
    SnapshotError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    WorkspaceError,
    WorkspaceLockedError,
)
from stagekit.snapshots.store import Progress
from stagekit.workspace import Workspace
from store_tools import contents_are_whole, overwrite_stored, stored_at, stored_files


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"id": range(n), "value": [(i * 7919 + seed) % 1000 / 10 for i in range(n)],
                         "name": [f"row-{i}-{seed}" for i in range(n)]})


def write_features(ws: Workspace) -> dict[str, pd.DataFrame]:
    frames = {"prices": frame(500, 1), "volumes": frame(300, 2), "signals": frame(200, 3),
              "labels": frame(100, 4)}
    for name, df in frames.items():
        df.to_parquet(ws.features_dir / f"{name}.parquet")
    return frames


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def state(ws: Workspace) -> dict[str, list[str]]:
    """What the store holds: objects, manifests and temporaries."""
    return {d: sorted(p.relative_to(ws.state_dir).as_posix() for p in (ws.state_dir / d).rglob("*")
                      if p.is_file()) for d in ("objects", "snapshots", "tmp")}


EMPTY: dict[str, list[str]] = {"objects": [], "snapshots": [], "tmp": []}


def age(root: Path, seconds: float = 0.25) -> None:
    """Let every file under root leave the stat cache's "modified too recently" window."""
    time.sleep(seconds)


# --- the original bug ----------------------------------------------------------------------------------


def test_original_bug_cannot_happen(ws: Workspace, tmp_path: Path) -> None:
    """The old runner symlinked features/; hard links do no better. A snapshot survives all three writes."""
    frames = write_features(ws)
    golden = tree_bytes(ws.features_dir)
    prices = ws.features_dir / "prices.parquet"
    hardlinked = tmp_path / "hardlinked-prices.parquet"
    os.link(prices, hardlinked)  # what a hard-link "snapshot" would have kept

    ws.create_snapshot("golden", ["features"])

    inode = prices.stat().st_ino
    frame(50, 99).to_parquet(prices)  # pandas rewrites in place: same inode, truncated, rewritten
    assert prices.stat().st_ino == inode
    assert hardlinked.read_bytes() != golden["prices.parquet"]  # the hard link was changed with it
    os.truncate(ws.features_dir / "volumes.parquet", 10)
    (ws.features_dir / "signals.parquet").unlink()

    report = ws.verify_snapshot("golden")
    assert report.ok and report.files == 4
    restored = ws.restore_snapshot("golden", tmp_path / "restored").path
    assert tree_bytes(restored / "features") == golden
    for name, df in frames.items():
        pd.testing.assert_frame_equal(pd.read_parquet(restored / "features" / f"{name}.parquet"), df)
    assert tree_bytes(ws.checkout("golden") / "features") == golden

    drift = ws.verify_snapshot("golden", against=ws.root)  # and the live tree's drift is visible
    assert [(p.kind, p.path) for p in drift.problems] == [
        ("changed", "features/prices.parquet"), ("missing", "features/signals.parquet"),
        ("changed", "features/volumes.parquet")]
    later = ws.create_snapshot("later", ["features"]).snapshot  # a new snapshot sees what changed
    assert tree_bytes(ws.restore_snapshot("later", tmp_path / "later").path / "features") == tree_bytes(
        ws.features_dir) and [e.path for e in later.files] == ["features/labels.parquet",
                                                              "features/prices.parquet", "features/volumes.parquet"]


# --- cheap when unchanged ------------------------------------------------------------------------------


@pytest.fixture
def reads(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The workspace files (relative paths) that are opened, outside stagekit's own state."""
    seen: list[str] = []
    real = os.open

    def spy(path: str, *args: object, **kwargs: object) -> int:
        rel = os.path.relpath(path, ws.root)
        if not rel.startswith((".stagekit", "..")):
            seen.append(rel)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spy)
    return seen


def test_resnapshot_reads_only_changed_files_and_stores_nothing_twice(
    ws: Workspace, reads: list[str]
) -> None:
    for i in range(20):
        (ws.data_dir / f"f{i:02}.csv").write_text(f"row,{i}\n" * 100)
    (ws.data_dir / "copy.csv").write_text("row,3\n" * 100)  # same content as f03.csv
    age(ws.data_dir)
    first = ws.create_snapshot("a", ["data"])
    assert first.files_read == 21 and first.objects_added == 20  # identical contents are stored once
    stored = stored_files(ws)
    assert len(stored) == 20

    reads.clear()
    second = ws.create_snapshot("b", ["data"])
    assert reads == [] and second.files_read == 0 and second.objects_added == 0
    assert stored_files(ws) == stored
    assert second.snapshot.entries == first.snapshot.entries

    (ws.data_dir / "f07.csv").write_text("ROW,7\n" * 100)  # same size, new content
    third = ws.create_snapshot("c", ["data"])
    assert reads == ["data/f07.csv"] and third.objects_added == 1
    assert ws.verify_snapshot("c").ok and ws.verify_snapshot("a").ok


def test_rewrite_that_restores_the_mtime_is_still_seen(ws: Workspace, reads: list[str]) -> None:
    """Same size, same mtime_ns, same inode: the ctime (which no program can set) still gives it away."""
    path = ws.data_dir / "x.bin"
    path.write_bytes(b"a" * 4096)
    age(ws.data_dir)
    ws.create_snapshot("one", ["data"])
    before = path.stat()
    with open(path, "r+b") as f:
        f.write(b"b" * 4096)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns, path.stat().st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino)
    reads.clear()
    two = ws.create_snapshot("two", ["data"])
    assert reads == ["data/x.bin"]
    assert two.snapshot.files[0].hash == hashlib.sha256(b"b" * 4096).hexdigest()


def test_file_modified_just_before_hashing_is_not_cached(ws: Workspace, reads: list[str]) -> None:
    (ws.data_dir / "old.txt").write_text("old")
    age(ws.data_dir)
    (ws.data_dir / "fresh.txt").write_text("fresh")  # its timestamps could still fail to move on a rewrite
    ws.create_snapshot("one", ["data"])
    reads.clear()
    ws.create_snapshot("two", ["data"])
    assert reads == ["data/fresh.txt"]


def test_rehash_ignores_the_cache(ws: Workspace) -> None:
    (ws.data_dir / "a").write_text("a")
    age(ws.data_dir)
    ws.create_snapshot("one", ["data"])
    assert ws.create_snapshot("two", ["data"], rehash=True).files_read == 1


# --- changing while read -------------------------------------------------------------------------------


def _writer_during_read(
    monkeypatch: pytest.MonkeyPatch, target: Path, times: int, how: str = "append"
) -> list[int]:
    """Append to ``target`` right after each of the snapshot's reads of it gets its first chunk."""
    writes: list[int] = []
    real = os.readv

    def racing_readv(fd: int, buffers: list[memoryview]) -> int:
        n = real(fd, buffers)
        first_chunk = os.lseek(fd, 0, os.SEEK_CUR) == n
        if first_chunk and len(writes) < times and os.fstat(fd).st_ino == target.stat().st_ino:
            writes.append(n)
            if how == "append":
                with open(target, "ab") as f:
                    f.write(b"appended while being read\n")
            else:  # an atomic writer replaced it: the open file is unchanged, the path is not
                (target.parent / "new").write_bytes(b"replacement %d" % len(writes))
                os.replace(target.parent / "new", target)
        return n

    monkeypatch.setattr(os, "readv", racing_readv)
    return writes


@pytest.mark.parametrize("how", ["append", "replace"])
def test_file_changing_once_while_read_is_read_again(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    target = ws.data_dir / "growing.log"
    target.write_bytes(b"x" * 5000)
    (ws.data_dir / "calm.txt").write_text("calm")
    writes = _writer_during_read(monkeypatch, target, times=1, how=how)
    snap = ws.create_snapshot("s", ["data"]).snapshot
    assert len(writes) == 1
    entry = next(e for e in snap.files if e.path == "data/growing.log")
    assert entry.size == target.stat().st_size  # the second, undisturbed read is what was stored
    assert entry.hash == hashlib.sha256(target.read_bytes()).hexdigest()
    assert ws.verify_snapshot("s").ok


def test_file_that_keeps_changing_is_reported_and_nothing_is_kept(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = ws.data_dir / "busy.log"
    target.write_bytes(b"x" * 5000)
    (ws.data_dir / "calm.txt").write_text("calm")
    _writer_during_read(monkeypatch, target, times=100)
    with pytest.raises(SnapshotError, match=r"kept changing while being read.*data/busy\.log") as info:
        ws.create_snapshot("s", ["data"])
    assert info.value.problems == ["data/busy.log: changed while being read"]
    assert state(ws) == EMPTY


# --- tampering -----------------------------------------------------------------------------------------


def test_tampering_with_the_store_is_caught(ws: Workspace, tmp_path: Path) -> None:
    write_features(ws)
    snap = ws.create_snapshot("golden", ["features"]).snapshot
    by_path = {e.path: e for e in snap.files}
    for p in stored_files(ws):
        assert stat.S_IMODE(p.stat().st_mode) == 0o444  # read-only, which stops no one running as root
    overwrite_stored(ws, by_path["features/prices.parquet"].hash, b"tampered", at=100)
    stored_at(ws, by_path["features/labels.parquet"].hash).unlink()

    report = ws.verify_snapshot("golden")
    assert not report.ok
    assert [(p.kind, p.path) for p in report.problems] == [
        ("missing", "features/labels.parquet"), ("changed", "features/prices.parquet")]
    with pytest.raises(SnapshotCorruptError, match=r"labels\.parquet"):
        ws.restore_snapshot("golden", tmp_path / "out")
    assert not (tmp_path / "out").exists() and list(tmp_path.glob(".out*")) == []


def test_tampered_object_with_same_size_is_caught_on_restore(ws: Workspace, tmp_path: Path) -> None:
    (ws.data_dir / "a.bin").write_bytes(b"A" * 1000)
    digest = ws.create_snapshot("s", ["data"]).snapshot.files[0].hash
    overwrite_stored(ws, digest, b"B" * 1000)
    with pytest.raises(SnapshotCorruptError, match=r"data/a\.bin") as info:
        ws.restore_snapshot("s", tmp_path / "out")
    assert info.value.path == "data/a.bin"
    assert not (tmp_path / "out").exists()


def test_verify_against_a_directory_lists_changed_missing_and_extra(ws: Workspace, tmp_path: Path) -> None:
    write_features(ws)
    (ws.features_dir / "run.sh").write_text("#!/bin/sh\n")
    (ws.features_dir / "run.sh").chmod(0o755)
    ws.create_snapshot("s", ["features"])
    out = ws.restore_snapshot("s", tmp_path / "out").path
    assert ws.verify_snapshot("s", against=out).ok
    (out / "features" / "prices.parquet").write_bytes(b"x")
    (out / "features" / "labels.parquet").unlink()
    (out / "features" / "new.parquet").write_bytes(b"n")
    (out / "features" / "run.sh").chmod(0o644)
    report = ws.verify_snapshot("s", against=out)
    assert [(p.kind, p.path) for p in report.problems] == [
        ("missing", "features/labels.parquet"), ("extra", "features/new.parquet"),
        ("changed", "features/prices.parquet"), ("changed", "features/run.sh")]
    assert "mode 0644, expected 0755" in str(report.problems[-1])


# --- interrupted creation ------------------------------------------------------------------------------


def _fail_after(calls: int, exc: BaseException, real: object) -> object:
    count = [0]

    def wrapper(*args: object) -> object:
        count[0] += 1
        if count[0] > calls:
            raise exc
        return real(*args)  # type: ignore[operator]

    return wrapper


@pytest.mark.parametrize(("call", "after", "exc", "message"), [
    ("write", 2, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), r"features/\w+\.parquet could not be stored: "
                                                                   "No space left on device"),  # storing
    ("write", 1, KeyboardInterrupt(), None),  # interrupted while storing
    ("rename", 2, OSError(errno.ENOSPC, "full"), "full"),  # naming the third object
    ("replace", 0, OSError(errno.EIO, "I/O error"), r"could not create snapshot 's'.*nothing was kept"),  # manifest
])
def test_a_failure_at_any_step_leaves_nothing(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, call: str, after: int, exc: BaseException, message: str | None
) -> None:
    write_features(ws)
    ws.create_snapshot("before", ["features/labels.parquet"])
    before = state(ws)
    monkeypatch.setattr(os, call, _fail_after(after, exc, getattr(os, call)))
    with pytest.raises(SnapshotError if isinstance(exc, OSError) else KeyboardInterrupt, match=message):
        ws.create_snapshot("s", ["features"])
    monkeypatch.undo()
    assert state(ws) == before and contents_are_whole(ws)
    assert ws.create_snapshot("s", ["features"]).snapshot.file_count == 4  # and the name is still free


@pytest.mark.parametrize("crash_at", ["storing", "naming", "committing"])
def test_killed_creation_leaves_no_snapshot_and_no_partial_object(ws: Workspace, crash_at: str) -> None:
    """A creation killed outright (no cleanup runs) leaves no snapshot, and no store name holds part of a
    file; the next creation sweeps the temporaries and ``gc`` the unreferenced objects."""
    write_features(ws)
    crash = {
        # die half-way through writing a file into the store
        "storing": "write = os.write\nos.write = lambda fd, data, n=[0]: os._exit(9) if (n.__setitem__(0, n[0] + 1) "
                   "or n[0] > 1) else write(fd, data[: len(data) // 2])",
        # die after the first object got its name
        "naming": "rename = os.rename\nos.rename = lambda a, b, n=[0]: os._exit(9) if (n.__setitem__(0, n[0] + 1) "
                  "or n[0] > 1) else rename(a, b)",
        # die after every object got its name, before the manifest did
        "committing": "os.replace = lambda a, b: os._exit(9)",
    }[crash_at]
    code = f"import os\nfrom stagekit.workspace import Workspace\n{crash}\n" \
           f"Workspace({str(ws.root)!r}).create_snapshot('s', ['features'])\n"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 9
    assert ws.snapshots() == []
    assert state(ws)["tmp"] != [] or crash_at != "storing"  # the crash left temporaries behind...
    assert contents_are_whole(ws)  # ...but no object under its name holds anything but its whole content
    (ws.data_dir / "new.txt").write_text("new")
    ws.create_snapshot("other", ["data"])
    assert state(ws)["tmp"] == []  # swept by the next creation
    removed, freed = ws.gc()  # what the killed creation had stored and nothing refers to
    assert removed == {"storing": 0, "naming": 1, "committing": 4}[crash_at]
    assert (freed > 0) == (crash_at != "storing")
    assert len(stored_files(ws)) == 1
    ws.create_snapshot("s", ["features"])
    assert ws.verify_snapshot("s").ok


# --- concurrency ---------------------------------------------------------------------------------------


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_processes_creating_at_once_both_succeed_with_wait(ws: Workspace) -> None:
    for i in range(40):
        (ws.data_dir / f"{i}.bin").write_bytes(os.urandom(50_000))
    code = f"""
        import os, sys, time
        from stagekit.workspace import Workspace
        if sys.argv[1] == "slow":  # pause half-way, holding the lock, until the other process is waiting
            rename = os.rename
            def paused(a, b, first=[True]):
                if first.pop() if first else False:
                    print("committing", flush=True)
                    time.sleep(1.0)
                rename(a, b)
            os.rename = paused
        r = Workspace({str(ws.root)!r}).create_snapshot(sys.argv[1], ["data"], wait=60)
        print(r.snapshot.file_count, r.objects_added)
    """
    slow = _spawn(code, "slow")
    assert slow.stdout is not None and slow.stdout.readline().strip() == "committing"
    fast = _spawn(code, "fast")  # starts while "slow" is between storing its objects and its manifest
    outs = [p.communicate(timeout=120) for p in (slow, fast)]
    assert [p.returncode for p in (slow, fast)] == [0, 0], outs
    assert [o[0].strip() for o in outs] == ["40 40", "40 0"]  # "fast" waited, then found every content stored
    assert [s.name for s in ws.snapshots()] == ["fast", "slow"]
    assert ws.verify_snapshot("fast").ok and ws.verify_snapshot("slow").ok
    assert len(stored_files(ws)) == 40 and state(ws)["tmp"] == []


def test_same_name_from_two_processes_one_wins(ws: Workspace) -> None:
    (ws.data_dir / "a").write_bytes(os.urandom(200_000))
    code = f"""
        from stagekit.errors import SnapshotExistsError
        from stagekit.workspace import Workspace
        try:
            Workspace({str(ws.root)!r}).create_snapshot("same", ["data"], wait=60)
            print("created")
        except SnapshotExistsError as exc:
            print("exists")
    """
    procs = [_spawn(code) for _ in range(2)]
    results = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert results == ["created", "exists"]
    assert ws.verify_snapshot("same").ok


def test_creation_while_another_process_holds_the_lock_is_refused_clearly(ws: Workspace) -> None:
    (ws.data_dir / "a").write_text("a")
    holder = _spawn(f"""
        import sys
        from stagekit.workspace import Workspace
        with Workspace({str(ws.root)!r}).lock("write", purpose="creating snapshot 'big'"):
            print("locked", flush=True)
            sys.stdin.read() if False else __import__("time").sleep(30)
    """)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkspaceLockedError, match=rf"busy.*pid {holder.pid}: creating snapshot 'big'"):
            ws.create_snapshot("mine", ["data"])
        with pytest.raises(WorkspaceLockedError):
            ws.delete_snapshot("mine", wait=0.2)
    finally:
        holder.kill()
        holder.wait()
    assert ws.create_snapshot("mine", ["data"]).snapshot.file_count == 1  # released when the holder died


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "message"), [
    ("", "is empty"),
    ("a/b", "path separator"),
    ("a\\b", "path separator"),
    ("..", "'..'"),
    ("v1..v2", "'..'"),
    (".hidden", "must start with a letter or digit"),
    ("-rf", "must start with a letter or digit"),
    ("with space", "letters, digits"),
    ("x" * 200, "longer than"),
])
def test_bad_names_are_refused(ws: Workspace, name: str, message: str) -> None:
    (ws.data_dir / "a").write_text("a")
    with pytest.raises(SnapshotError, match=message):
        ws.create_snapshot(name, ["data"])
    with pytest.raises(SnapshotError, match=message):
        ws.snapshot(name)
    assert state(ws)["snapshots"] == []


def test_existing_name_is_refused(ws: Workspace) -> None:
    (ws.data_dir / "a").write_text("a")
    ws.create_snapshot("v1", ["data"])
    (ws.data_dir / "a").write_text("changed")
    with pytest.raises(SnapshotExistsError, match="'v1' already exists"):
        ws.create_snapshot("v1", ["data"])
    assert ws.snapshot("v1").files[0].size == 1


@pytest.mark.parametrize(("path", "message"), [
    ("/etc", "outside the workspace"),
    ("../outside", "outside the workspace"),
    ("data/../../outside", "outside the workspace"),
    ("nope", "does not exist"),
    (".stagekit", "stagekit's own state"),
    (".stagekit/objects", "stagekit's own state"),
])
def test_bad_paths_are_refused(ws: Workspace, path: str, message: str) -> None:
    (ws.root.parent / "outside").mkdir()
    with pytest.raises(WorkspaceError, match=message):
        ws.create_snapshot("s", [path])
    with pytest.raises(WorkspaceError, match="no paths"):
        ws.create_snapshot("s", [])


def test_symlinks_pointing_outside_are_refused_never_followed(ws: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (ws.features_dir / "ok.txt").write_text("ok")
    (ws.features_dir / "abs").symlink_to(secret)
    (ws.features_dir / "rel").symlink_to("../../secret.txt")
    (ws.features_dir / "data").symlink_to("../data")  # inside the workspace, not inside the snapshot
    with pytest.raises(WorkspaceError) as info:
        ws.create_snapshot("s", ["features"])
    assert info.value.problems == [
        f"features/abs: symlink points outside the workspace (-> {secret}); copy the data in",
        "features/data: symlink points to data, which this snapshot does not include; add it to the "
        "snapshot's paths",
        "features/rel: symlink points outside the workspace (-> ../../secret.txt); copy the data in",
    ]
    assert state(ws) == EMPTY


def test_path_through_a_symlink_to_outside_is_refused(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "f.parquet").write_text("x")
    (ws.root / "mounted").symlink_to(outside)  # the old runner's features-directory symlink
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        ws.create_snapshot("s", ["mounted"])
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        ws.create_snapshot("s", ["mounted/f.parquet"])


def test_symlinks_inside_the_snapshot_are_recorded_and_restored_as_links(
    ws: Workspace, tmp_path: Path
) -> None:
    (ws.features_dir / "v3.parquet").write_text("v3")
    (ws.features_dir / "latest.parquet").symlink_to("v3.parquet")
    (ws.features_dir / "absolute").symlink_to(ws.features_dir / "v3.parquet")
    (ws.data_dir / "raw").write_text("raw")
    (ws.features_dir / "raw").symlink_to("../data/raw")
    snap = ws.create_snapshot("s", ["features", "data"]).snapshot
    links = {e.path: e.target for e in snap.entries if e.kind == "symlink"}
    assert links == {"features/latest.parquet": "v3.parquet", "features/absolute": "v3.parquet",
                     "features/raw": "../data/raw"}  # an absolute link inside is stored relative
    out = ws.restore_snapshot("s", tmp_path / "out").path
    assert os.readlink(out / "features" / "latest.parquet") == "v3.parquet"
    assert (out / "features" / "raw").read_text() == "raw"
    (ws.features_dir / "v3.parquet").write_text("changed")
    assert (out / "features" / "latest.parquet").read_text() == "v3"


def test_special_files_are_refused(ws: Workspace) -> None:
    os.mkfifo(ws.data_dir / "pipe")
    with pytest.raises(WorkspaceError, match="data/pipe: not a regular file"):
        ws.create_snapshot("s", ["data"])


# --- restore, delete, layout ---------------------------------------------------------------------------


def test_restore_targets(ws: Workspace, tmp_path: Path) -> None:
    (ws.data_dir / "a").write_text("a")
    ws.create_snapshot("s", ["data"])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "file").write_text("f")
    for target in ("full", "file"):
        with pytest.raises(SnapshotError, match="exists and is not an empty directory"):
            ws.restore_snapshot("s", tmp_path / target)
    with pytest.raises(SnapshotError, match="stagekit's own state"):
        ws.restore_snapshot("s", ws.state_dir / "out")
    with pytest.raises(SnapshotNotFoundError, match="no snapshot named 'nope'"):
        ws.restore_snapshot("nope", tmp_path / "x")
    (tmp_path / "empty").mkdir()
    assert (ws.restore_snapshot("s", tmp_path / "empty").path / "data" / "a").read_text() == "a"
    assert (ws.restore_snapshot("s", tmp_path / "new" / "deep").path / "data" / "a").read_text() == "a"


def test_restore_keeps_modes_and_empty_directories(ws: Workspace, tmp_path: Path) -> None:
    (ws.data_dir / "run.sh").write_text("#!/bin/sh\n")
    (ws.data_dir / "run.sh").chmod(0o750)
    (ws.data_dir / "empty" / "deeper").mkdir(parents=True)
    snap = ws.create_snapshot("s", ["data"]).snapshot
    assert [(e.path, e.kind) for e in snap.entries] == [("data/empty/deeper", "dir"), ("data/run.sh", "file")]
    out = ws.restore_snapshot("s", tmp_path / "out").path
    assert stat.S_IMODE((out / "data" / "run.sh").stat().st_mode) == 0o750
    assert (out / "data" / "empty" / "deeper").is_dir()
    assert (out / "data" / "run.sh").stat().st_nlink == 1  # a copy, not a link into the store


def test_hardlink_restore_links_every_file_and_is_unsafe_against_in_place_writers(
    ws: Workspace, tmp_path: Path
) -> None:
    write_features(ws)
    (ws.features_dir / "tiny.txt").write_text("t")
    snap = ws.create_snapshot("s", ["features"]).snapshot
    result = ws.restore_snapshot("s", tmp_path / "out", hardlink=True)
    assert result.method == "hardlink"
    for e in snap.files:  # small or big, every file is a link to its stored object
        assert os.path.samefile(result.path / e.path, stored_at(ws, e.hash))
    frame(5).to_parquet(result.path / "features" / "prices.parquet")  # the hazard: the store changes too...
    assert [p.path for p in ws.verify_snapshot("s").problems] == ["features/prices.parquet"]  # ...verify says so


def test_delete_collects_only_unshared_objects(ws: Workspace) -> None:
    (ws.data_dir / "shared").write_text("shared")
    (ws.data_dir / "only-a").write_text("a")
    ws.create_snapshot("a", ["data"])
    (ws.data_dir / "only-a").unlink()
    (ws.data_dir / "only-b").write_text("b")
    ws.create_snapshot("b", ["data"])
    ws.checkout("a")
    result = ws.delete_snapshot("a")
    assert (result.objects_removed, result.bytes_freed) == (1, 1)
    assert not (ws.checkouts_dir / "a").exists()
    assert ws.verify_snapshot("b").ok and [s.name for s in ws.snapshots()] == ["b"]
    with pytest.raises(SnapshotNotFoundError):
        ws.delete_snapshot("a")
    ws.create_snapshot("a", ["data"])  # the name is free again
    assert ws.gc() == (0, 0)


def test_delete_and_gc_keep_what_the_other_users_of_the_store_name_and_what_was_touched_since(
    ws: Workspace,
) -> None:
    """The object store is shared (the run store's artifacts live there too): ``keep`` says what else stays."""
    from stagekit.snapshots import snapshot

    for name in ("named", "recent", "old", "snap"):
        (ws.data_dir / name).write_text(name)
    ws.create_snapshot("all", ["data"])
    by_name = {Path(e.path).name: e.hash for e in ws.snapshot("all").files}
    long_ago, since = time.time() - 3600, time.time() - 60
    for digest in by_name.values():
        os.utime(stored_at(ws, digest), (long_ago, long_ago))
    os.utime(stored_at(ws, by_name["recent"]), (since + 1, since + 1))
    asked: list[str] = []

    def keep() -> tuple[set[str], float | None]:
        with pytest.raises(WorkspaceLockedError), ws.lock("write"):  # asked while delete holds the write lock
            pass
        asked.append("asked")
        return {by_name["named"]}, since

    got = snapshot.delete(ws, "all", keep=keep)
    assert asked == ["asked"] and (got.objects_removed, got.bytes_freed) == (2, len("old") + len("snap"))
    assert {p.name for p in stored_files(ws)} == {by_name["named"], by_name["recent"]}
    assert snapshot.gc(ws, keep=lambda: (set(), None)) == (2, len("named") + len("recent"))


def test_a_keep_that_fails_stops_delete_and_gc_before_anything_is_removed(ws: Workspace) -> None:
    from stagekit.snapshots import snapshot

    (ws.data_dir / "a").write_text("a")
    ws.create_snapshot("a", ["data"])
    (ws.data_dir / "b").write_text("b")
    ws.create_snapshot("b", ["data/b"])

    def keep() -> tuple[set[str], float | None]:
        raise SnapshotError("cannot tell what the runs hold")

    for attempt in (lambda: snapshot.delete(ws, "a", keep=keep), lambda: snapshot.gc(ws, keep=keep)):
        with pytest.raises(SnapshotError, match="cannot tell"):
            attempt()
    assert [s.name for s in ws.snapshots()] == ["a", "b"] and ws.verify_snapshot("a").ok
    assert len(stored_files(ws)) == 2


def test_damaged_manifest_is_named_and_gc_removes_nothing(ws: Workspace) -> None:
    (ws.data_dir / "a").write_text("a")
    ws.create_snapshot("good", ["data"])
    (ws.snapshots_dir / "bad.json").write_text("{not json")
    with pytest.raises(SnapshotError, match=r"manifest .*bad\.json' is damaged"):
        ws.snapshots()
    for collect in (lambda: ws.delete_snapshot("good"), ws.gc):
        with pytest.raises(SnapshotError, match="damaged"):
            collect()
    assert len(stored_files(ws)) == 1 and ws.verify_snapshot("good").ok
    ws.delete_snapshot("bad")  # a damaged snapshot can still be deleted
    assert [s.name for s in ws.snapshots()] == ["good"]


_DIGEST = "0" * 64


@pytest.mark.parametrize("entries", [
    [{"path": "../escape", "type": "file", "size": 1, "hash": _DIGEST, "mode": "0644"}],
    [{"path": "/etc/escape", "type": "file", "size": 1, "hash": _DIGEST, "mode": "0644"}],
    [{"path": "data/./a", "type": "file", "size": 1, "hash": _DIGEST, "mode": "0644"}],
    [{"path": "data/a", "type": "file", "size": 1, "hash": "../../../../etc/passwd", "mode": "0644"}],
    [{"path": "data//a", "type": "file", "size": 1, "hash": _DIGEST, "mode": "0644"}],
    [{"path": "data/link", "type": "symlink", "target": "/tmp"},
     {"path": "data/link/planted", "type": "file", "size": 1, "hash": _DIGEST, "mode": "0644"}],
    [{"path": "data/a", "type": "file", "size": 1, "hash": _DIGEST, "mode": "0644"},
     {"path": "data/a", "type": "symlink", "target": "/tmp"}],
], ids=["dotdot", "absolute", "dot", "hash", "empty-part", "through-link", "twice"])
def test_tampered_manifest_cannot_make_restore_write_or_read_outside(
    ws: Workspace, tmp_path: Path, entries: list[dict[str, object]]
) -> None:
    (ws.data_dir / "a").write_text("a")
    ws.create_snapshot("s", ["data"])
    manifest = ws.snapshots_dir / "s.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "entries": entries}))
    with pytest.raises(SnapshotError, match=r"manifest .*s\.json' is damaged"):
        ws.restore_snapshot("s", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not Path("/tmp/planted").exists()


def test_whole_workspace_snapshot_skips_stagekit_state(ws: Workspace) -> None:
    (ws.data_dir / "a").write_text("a")
    ws.record_run("r1", {"ok": True})
    first = ws.create_snapshot("all", ["."]).snapshot
    assert first.paths == (".",)
    assert [e.path for e in first.entries] == ["data/a", "features", "runs/r1.json"]
    second = ws.create_snapshot("file", [ws.root / "data" / "a"]).snapshot  # absolute paths work too
    assert second.paths == ("data/a",) and second.file_count == 1


def test_awkward_file_names_round_trip(ws: Workspace, tmp_path: Path) -> None:
    names = ['quote"d', "back\\slash", "new\nline", "ünï cödé", "tab\tbed", "[{brackets}]", "-dash"]
    for i, name in enumerate(names):
        (ws.data_dir / name).write_bytes(bytes([i]) * (i + 1))
    snap = ws.create_snapshot("s", ["data"]).snapshot
    assert ws.snapshot("s") == snap
    assert tree_bytes(ws.restore_snapshot("s", tmp_path / "out").path / "data") == tree_bytes(ws.data_dir)


def test_overlapping_paths_are_merged(ws: Workspace) -> None:
    (ws.data_dir / "a").write_text("a")
    snap = ws.create_snapshot("s", ["data/a", "data", "./data/"]).snapshot
    assert snap.paths == ("data",) and [e.path for e in snap.entries] == ["data/a"]


def test_progress_is_reported(ws: Workspace) -> None:
    for i in range(600):
        (ws.data_dir / f"{i}").write_bytes(b"x" * i)
    seen: list[Progress] = []
    ws.create_snapshot("s", ["data"], progress=seen.append)
    assert seen[-1].done == seen[-1].total == 600 and seen[-1].done_bytes == sum(range(600))
    seen.clear()
    ws.verify_snapshot("s", progress=seen.append)
    assert seen[-1].done == seen[-1].total == 600


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.dictionaries(
    st.lists(st.sampled_from(["a", "b", "c.txt", "d e", "ü"]), min_size=1, max_size=3).map("/".join),
    st.binary(max_size=3000), min_size=1, max_size=8))
def test_any_tree_round_trips(tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes]) -> None:
    root = tmp_path_factory.mktemp("ws")
    written: dict[str, bytes] = {}
    for rel, data in sorted(files.items()):
        path = root / "data" / rel
        if any(p.is_file() for p in path.parents) or path.is_dir():
            continue  # a name cannot be both a file and a directory
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written[rel] = data
    ws = Workspace(root)
    ws.create_snapshot("s", ["data"])
    out = ws.restore_snapshot("s", root.parent / f"{root.name}-out").path
    assert tree_bytes(out / "data") == written
    assert ws.verify_snapshot("s").ok
