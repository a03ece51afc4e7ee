"""Snapshots when things go wrong (issue 13): a full disk, a target that cannot be created, hard links across
filesystems, files that cannot be removed. Every failure is a ``SnapshotError`` (or ``WorkspaceError``) that
names the snapshot and the file; nothing already produced is lost; nothing half-made is left.

Full disks are simulated through ``os`` (``store_tools.fill_disk``) and, where user namespaces allow, made
real: a 1 MiB tmpfs mounted in a private namespace (``unshare -rm``), filled to the last byte.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stagekit.errors import SnapshotError, WorkspaceLockedError
from stagekit.workspace import Workspace
from store_tools import contents_are_whole, fill_disk, stored_at, stored_files, unshare_or_skip

ENOSPC = os.strerror(errno.ENOSPC)


@pytest.fixture
def ws(ws: Workspace) -> Workspace:
    """The shared empty workspace, with features and a snapshot 'golden' of them."""
    (ws.features_dir / "a.parquet").write_bytes(b"A" * 3000)
    (ws.features_dir / "sub").mkdir()
    (ws.features_dir / "sub" / "b.parquet").write_bytes(b"B" * 2000)
    (ws.features_dir / "c.parquet").write_bytes(b"C" * 1000)
    (ws.features_dir / "latest").symlink_to("a.parquet")
    (ws.features_dir / "empty").mkdir()
    ws.create_snapshot("golden", ["features"])
    return ws


def state(ws: Workspace) -> dict[str, list[str]]:
    """Everything under .stagekit but the locks, the stat cache and the object store's fan-out directories."""
    return {d: sorted(p.relative_to(ws.state_dir).as_posix() for p in (ws.state_dir / d).rglob("*")
                      if d != "objects" or not p.is_dir()) for d in ("objects", "snapshots", "checkouts", "tmp")}


def listing(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


def object_of(ws: Workspace, rel: str) -> Path:
    return stored_at(ws, next(e.hash for e in ws.snapshot("golden").files if e.path == rel))


# --- locks ---------------------------------------------------------------------------------------------


def test_taking_a_lock_needs_no_free_space(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    lock_file = ws.locks_dir / "write.lock"
    lock_file.write_text("pid 999999999: creating snapshot 'long-gone'")  # a dead holder's text
    refused = fill_disk(monkeypatch)
    with ws.lock("write", purpose="deleting snapshot 'golden'"):
        assert "pwrite" in refused  # the holder could not be written...
        assert lock_file.read_bytes() == b""  # ...so the dead holder's text is gone rather than misleading
        with pytest.raises(WorkspaceLockedError, match=r"holds write\.lock \(unknown\)") as info, \
                ws.lock("write", wait=0.1):
            pass  # one holder at a time, full disk or not
        assert info.value.holder == "unknown"
    with ws.lock("fresh", purpose="never taken before"):  # a new lock file: created empty, nothing written
        assert (ws.locks_dir / "fresh.lock").stat().st_size == 0
    monkeypatch.undo()
    with ws.lock("write", purpose="testing"), pytest.raises(WorkspaceLockedError, match="pid .*: testing"), \
            ws.lock("write", wait=0):
        pass  # with space again, the holder is named again


# --- delete, gc ----------------------------------------------------------------------------------------


def test_delete_and_gc_free_space_on_a_full_disk(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    (ws.data_dir / "x").write_text("only in other")
    ws.create_snapshot("other", ["data", "features/c.parquet"])  # shares c.parquet with golden
    ws.checkout("golden")
    (ws.tmp_dir / "123-crashed-0").write_bytes(b"left by a killed creation")
    fill_disk(monkeypatch, also=("mkdir", "rename", "replace", "link", "symlink"))
    result = ws.delete_snapshot("golden")
    assert (result.objects_removed, result.bytes_freed) == (2, 5000)  # a and b; c is still used by other
    assert ws.gc() == (0, 0)
    ws.delete_snapshot("other")  # a snapshot never checked out: its checkout lock file is new
    monkeypatch.undo()
    assert ws.snapshots() == [] and stored_files(ws) == []
    assert state(ws) == {"objects": [], "snapshots": [], "checkouts": [], "tmp": []}


def test_delete_that_cannot_remove_the_checkout_leaves_the_snapshot_intact(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.checkout("golden")
    before = state(ws)

    def busy(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), os.fspath(path))

    monkeypatch.setattr(shutil, "rmtree", busy)
    with pytest.raises(SnapshotError, match=r"could not delete snapshot 'golden': cannot remove its checkout: "
                       r"Device or resource busy \('.*checkouts/golden'\); snapshot 'golden' is intact") as info:
        ws.delete_snapshot("golden")
    assert info.value.snapshot == "golden"
    monkeypatch.undo()
    assert {k: v for k, v in state(ws).items() if k != "checkouts"} == \
        {k: v for k, v in before.items() if k != "checkouts"}
    assert ws.verify_snapshot("golden").ok and (ws.checkout("golden") / "features" / "c.parquet").exists()
    ws.delete_snapshot("golden")


def test_delete_that_cannot_remove_the_manifest_leaves_the_snapshot_intact(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, unlink = ws.snapshots_dir / "golden.json", os.unlink

    def guarded(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        if os.fspath(path) == str(manifest):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", guarded)
    with pytest.raises(SnapshotError, match=r"cannot remove its manifest: Read-only file system \('.*golden\.json'\)"
                       r"; snapshot 'golden' is intact"):
        ws.delete_snapshot("golden")
    monkeypatch.undo()
    assert ws.verify_snapshot("golden").ok and len(stored_files(ws)) == 3


def test_delete_that_cannot_remove_a_content_says_what_is_left_and_gc_removes_it_later(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck, unlink = object_of(ws, "features/sub/b.parquet"), os.unlink

    def guarded(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        if os.fspath(path) == str(stuck):
            raise OSError(errno.EIO, os.strerror(errno.EIO), os.fspath(path))
        unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", guarded)
    with pytest.raises(SnapshotError, match=rf"deleted snapshot 'golden', but 1 stored content\(s\) no snapshot uses "
                       rf"could not be removed \(2 were, 4000 bytes freed\): {stuck}: Input/output error; "
                       r"`stagekit snapshot gc` removes them") as info:
        ws.delete_snapshot("golden")
    assert info.value.path == str(stuck) and info.value.problems == [f"{stuck}: Input/output error"]
    with pytest.raises(SnapshotError, match="gc could not finish: 1 stored content"):
        ws.gc()
    monkeypatch.undo()
    assert ws.snapshots() == [] and stored_files(ws) == [stuck]  # deleted whole: no manifest names a gap
    assert ws.gc() == (1, 2000) and stored_files(ws) == []


def test_delete_whose_removal_cannot_be_flushed_keeps_the_contents(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(SnapshotError, match=r"deleted snapshot 'golden', but the deletion could not be flushed to "
                       r"disk \(Input/output error\); its stored contents were kept"):
        ws.delete_snapshot("golden")  # after a crash the manifest might be back: it must find its contents
    monkeypatch.undo()
    assert ws.snapshots() == [] and len(stored_files(ws)) == 3
    assert ws.gc() == (3, 6000)


# --- reading -------------------------------------------------------------------------------------------


def test_a_read_error_while_verifying_names_the_file(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(fd: int, buffers: Any) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "readv", failing)
    with pytest.raises(SnapshotError, match=r"could not verify snapshot 'golden': Input/output error "
                       r"\('.*/\.stagekit/objects/\w\w/\w{64}'\)") as info:
        ws.verify_snapshot("golden")
    assert info.value.snapshot == "golden" and info.value.path is not None and os.path.isfile(info.value.path)


def test_an_unreadable_manifest_is_named(ws: Workspace) -> None:
    (ws.snapshots_dir / "odd.json").mkdir()  # something that cannot be read as a file
    with pytest.raises(SnapshotError, match=r"cannot read snapshot manifest '.*/odd\.json': Is a directory") as info:
        ws.snapshots()
    assert info.value.snapshot == "odd"
    with pytest.raises(SnapshotError, match="odd.json"):  # delete reads every other manifest first...
        ws.delete_snapshot("golden")
    assert ws.verify_snapshot("golden").ok  # ...and removes nothing


# --- restore -------------------------------------------------------------------------------------------


def test_restore_on_a_full_disk_names_the_file_and_leaves_nothing(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = state(ws)
    refused = fill_disk(monkeypatch, after=1)  # the first file is copied, the second is not
    target = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(SnapshotError) as info:
        ws.restore_snapshot("golden", target)
    monkeypatch.undo()
    message, obj = str(info.value), object_of(ws, "features/c.parquet")
    assert message == (f"could not restore snapshot 'golden' to {str(target)!r}: features/c.parquet: {ENOSPC} "
                       f"(copying stored object {str(obj)!r} to {str(target / 'features' / 'c.parquet')!r}); "
                       "nothing was left behind")
    assert info.value.snapshot == "golden" and refused
    assert listing(tmp_path) == ["ws", *(f"ws/{p}" for p in listing(ws.root))]  # new/deeper/ removed too
    assert state(ws) == before and ws.verify_snapshot("golden").ok and contents_are_whole(ws)
    assert ws.restore_snapshot("golden", target).files == 3  # with space again


def test_restore_when_no_directory_can_be_created(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "b").mkdir()
    fill_disk(monkeypatch, also=("mkdir",))  # a full ext4: a new directory needs a block
    with pytest.raises(SnapshotError, match=rf"could not restore snapshot 'golden' to '.*/a/out': cannot create "
                       rf"directory '{tmp_path}/a': {ENOSPC}; nothing was left behind"):
        ws.restore_snapshot("golden", tmp_path / "a" / "out")
    with pytest.raises(SnapshotError, match=rf"to '{tmp_path}/b/out': {ENOSPC} \(creating directory "
                       rf"'{tmp_path}/b/out'\); nothing was left behind"):
        ws.restore_snapshot("golden", tmp_path / "b" / "out")
    assert listing(tmp_path / "b") == [] and not (tmp_path / "a").exists()


@pytest.mark.parametrize("under", ["file/out", "file/deeper/out"])
def test_restore_behind_a_file_in_the_way(ws: Workspace, tmp_path: Path, under: str) -> None:
    (tmp_path / "file").write_text("mine")
    with pytest.raises(SnapshotError, match=rf"could not restore snapshot 'golden' to '{tmp_path}/{under}': "
                       rf"'{tmp_path}/file' is in the way \(it is not a directory\)") as info:
        ws.restore_snapshot("golden", tmp_path / under)
    assert info.value.path == str(tmp_path / "file") and (tmp_path / "file").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not stop root")
def test_restore_into_a_read_only_directory(ws: Workspace, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(SnapshotError, match=rf"to '{locked}/out': Permission denied \(creating directory "
                           rf"'{locked}/out'\); nothing was left behind"):
            ws.restore_snapshot("golden", locked / "out")
        with pytest.raises(SnapshotError, match=rf"cannot create directory '{locked}/new': Permission denied"):
            ws.restore_snapshot("golden", locked / "new" / "out")
        assert listing(locked) == []
    finally:
        locked.chmod(0o755)


def test_restore_that_cannot_clean_up_says_exactly_what_is_left(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), os.fspath(path))

    fill_disk(monkeypatch, after=1)
    monkeypatch.setattr(shutil, "rmtree", busy)
    with pytest.raises(SnapshotError, match=rf"{ENOSPC} .*; could not remove what it made: "
                       rf"'({tmp_path}/\.out\.restoring-\w+)' \(Device or resource busy\)$") as info:
        ws.restore_snapshot("golden", tmp_path / "out")
    monkeypatch.undo()
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".out.restoring-")]
    assert [str(p) for p in left] == [str(info.value).rsplit("'", 2)[-2]]


@pytest.fixture
def links(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[str], int | None]], list[str]]:
    """Make ``os.link`` fail with the errno ``refuse(source)`` gives (None: link); returns the calls."""
    def install(refuse: Callable[[str], int | None]) -> list[str]:
        calls: list[str] = []
        link = os.link

        def fake(src: str, dst: str, *args: Any, **kwargs: Any) -> None:
            calls.append(src)
            if (err := refuse(src)) is not None:
                raise OSError(err, os.strerror(err), src, None, dst)
            link(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "link", fake)
        return calls

    return install


def test_hardlink_restore_across_filesystems_copies_and_says_so(
    ws: Workspace, tmp_path: Path, links: Callable[[Callable[[str], int | None]], list[str]]
) -> None:
    calls = links(lambda src: errno.EXDEV)
    result = ws.restore_snapshot("golden", tmp_path / "out", hardlink=True)
    assert result.method == "hardlink+copy (3 files copied: another filesystem)" and result.copied == 3
    assert len(calls) == 1  # the first refusal is enough: every other link would cross the same boundary
    for e in ws.snapshot("golden").files:
        restored = result.path / e.path
        assert restored.stat().st_nlink == 1 and not os.path.samefile(restored, stored_at(ws, e.hash))
    assert ws.verify_snapshot("golden", against=result.path).ok


def test_hardlink_restore_copies_an_object_with_too_many_links(
    ws: Workspace, tmp_path: Path, links: Callable[[Callable[[str], int | None]], list[str]]
) -> None:
    crowded = str(object_of(ws, "features/a.parquet"))
    links(lambda src: errno.EMLINK if src == crowded else None)
    result = ws.restore_snapshot("golden", tmp_path / "out", hardlink=True)
    assert result.method == "hardlink+copy (1 file copied: too many links to the stored object)"
    assert (result.path / "features" / "a.parquet").stat().st_nlink == 1
    assert (result.path / "features" / "c.parquet").stat().st_nlink == 2  # linked: the file and its object


def test_hardlink_restore_that_fails_otherwise_names_the_file(
    ws: Workspace, tmp_path: Path, links: Callable[[Callable[[str], int | None]], list[str]]
) -> None:
    links(lambda src: errno.EPERM)
    obj, out = object_of(ws, "features/a.parquet"), tmp_path / "out"
    with pytest.raises(SnapshotError, match=rf"features/a\.parquet: Operation not permitted \(linking stored object "
                       rf"'{obj}' to '{out}/features/a\.parquet'\); nothing was left behind"):
        ws.restore_snapshot("golden", out, hardlink=True)
    assert listing(tmp_path) == ["ws", *(f"ws/{p}" for p in listing(ws.root))]


def _other_filesystem(than: Path) -> Iterator[Path]:
    for base in ("/dev/shm", "/run/shm", "/var/tmp"):
        if os.path.isdir(base) and os.access(base, os.W_OK) and os.stat(base).st_dev != than.stat().st_dev:
            d = Path(tempfile.mkdtemp(prefix="stagekit-test-", dir=base))
            try:
                yield d
            finally:
                shutil.rmtree(d)
            return
    pytest.skip("no writable directory on another filesystem than the temporary one")


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    yield from _other_filesystem(tmp_path)


def test_hardlink_restore_to_a_real_other_filesystem(ws: Workspace, elsewhere: Path) -> None:
    result = ws.restore_snapshot("golden", elsewhere / "out", hardlink=True)
    assert result.method == "hardlink+copy (3 files copied: another filesystem)"
    assert ws.verify_snapshot("golden", against=result.path).ok and ws.verify_snapshot("golden").ok


# --- checkout ------------------------------------------------------------------------------------------


def test_checkout_on_a_full_disk_names_the_file_and_leaves_nothing(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_disk(monkeypatch, after=2, also=("pwrite",))  # a and c are copied; the lock's holder is not written
    dest, obj = ws.checkouts_dir / "golden", object_of(ws, "features/sub/b.parquet")
    with pytest.raises(SnapshotError, match=rf"could not check out snapshot 'golden' into '{dest}': "
                       rf"features/sub/b\.parquet: {ENOSPC} \(copying stored object '{obj}' to "
                       rf"'{dest}/features/sub/b\.parquet'\); nothing was left behind") as info:
        ws.checkout("golden")
    assert info.value.snapshot == "golden"
    assert listing(ws.checkouts_dir) == []
    monkeypatch.undo()
    assert (ws.checkout("golden") / "features" / "sub" / "b.parquet").read_bytes() == b"B" * 2000


def test_a_valid_checkout_is_served_on_a_full_disk(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    root = ws.checkout("golden")
    inode = (root / "features" / "a.parquet").stat().st_ino
    refused = fill_disk(monkeypatch, also=("mkdir", "rename", "replace", "link", "symlink"))
    assert ws.checkout("golden") == root and (root / "features" / "a.parquet").stat().st_ino == inode
    assert set(refused) <= {"pwrite"}  # the lock's holder text at most: nothing else was written


def test_a_checkout_whose_stamp_cannot_be_written_is_still_served(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(src: str, dst: str) -> None:  # the stamp is written last, atomically, ending in os.replace
        raise OSError(errno.ENOSPC, ENOSPC, src, None, dst)

    monkeypatch.setattr(os, "replace", full)
    root = ws.checkout("golden")
    assert (root / "features" / "a.parquet").read_bytes() == b"A" * 3000
    assert not (ws.checkouts_dir / "golden.stamp.json").exists()
    monkeypatch.undo()
    assert ws.checkout("golden") == root and (ws.checkouts_dir / "golden.stamp.json").exists()  # rebuilt


# --- a really full filesystem --------------------------------------------------------------------------

_FULL = textwrap.dedent("""
    import contextlib, io, json, os, subprocess, sys
    mnt, elsewhere = sys.argv[1], sys.argv[2]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], check=True)
    os.chdir(mnt)
    from stagekit.cli import main
    from stagekit.workspace import Workspace
    ws = Workspace(mnt).init()
    (ws.features_dir / "a.bin").write_bytes(os.urandom(200_000))
    (ws.features_dir / "b.bin").write_bytes(os.urandom(100_000))
    (ws.data_dir / "c.bin").write_bytes(os.urandom(100_000))

    def cli(*argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
        return [code, out.getvalue(), err.getvalue()]

    steps = {"create": cli("snapshot", "create", "golden", "features"),
             "create-data": cli("snapshot", "create", "data", "data")}
    for p in (ws.features_dir / "a.bin", ws.features_dir / "b.bin", ws.data_dir / "c.bin"):
        p.unlink()
    with open("filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"0" * 4096)
    steps["free-before"] = os.statvfs(mnt).f_bavail
    steps["restore"] = cli("snapshot", "restore", "golden", "--to", "out/deeper")
    steps["verify"] = cli("snapshot", "verify", "golden")
    try:
        ws.checkout("golden")
        steps["ws.checkout"] = "ok"
    except Exception as exc:
        steps["ws.checkout"] = f"{type(exc).__name__}: {exc}"
    steps["hardlink"] = cli("snapshot", "restore", "golden", "--to", elsewhere + "/hl", "--hardlink")
    steps["create-full"] = cli("snapshot", "create", "more", "filler")
    steps["delete"] = cli("snapshot", "delete", "data")
    steps["gc"] = cli("snapshot", "gc")
    steps["after"] = {"top": sorted(os.listdir(mnt)), "checkouts": sorted(os.listdir(ws.checkouts_dir)),
                      "tmp": os.listdir(ws.tmp_dir), "snapshots": [s.name for s in ws.snapshots()],
                      "verify": ws.verify_snapshot("golden").ok, "free": os.statvfs(mnt).f_bavail}
    print(json.dumps(steps))
""")


def test_on_a_really_full_filesystem(tmp_path: Path) -> None:
    """The issue as a user meets it: a 1 MiB filesystem with two snapshots, filled to the last byte."""
    unshare = unshare_or_skip()
    (tmp_path / "mnt").mkdir()
    (tmp_path / "elsewhere").mkdir()
    run = subprocess.run([unshare, "-rm", sys.executable, "-c", _FULL, str(tmp_path / "mnt"),
                          str(tmp_path / "elsewhere")], capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stderr
    steps = json.loads(run.stdout)
    assert steps["create"][0] == steps["create-data"][0] == 0 and steps["free-before"] == 0

    code, out, err = steps["restore"]
    assert (code, out) == (2, "") and "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith("stagekit: error: could not restore snapshot 'golden' to ") and \
        f"{ENOSPC} (copying stored object " in err and err.endswith("; nothing was left behind\n")
    assert steps["verify"][0] == 0  # verify needs no space
    assert steps["ws.checkout"].startswith("SnapshotError: could not check out snapshot 'golden' into ")
    assert ENOSPC in steps["ws.checkout"] and "nothing was left behind" in steps["ws.checkout"]

    code, out, err = steps["hardlink"]  # the workspace's tmpfs to the test's filesystem: a real EXDEV
    assert code == 0 and "(hardlink+copy (2 files copied: another filesystem), verified)" in out
    assert (tmp_path / "elsewhere" / "hl" / "features" / "a.bin").stat().st_size == 200_000

    code, out, err = steps["create-full"]
    assert code == 2 and "Traceback" not in err
    assert err == f"stagekit: error: could not create snapshot 'more': filler could not be stored: {ENOSPC}; " \
                  "nothing was kept\n"

    # the original bug: delete crashed writing its (never taken) checkout lock's holder text
    assert steps["delete"] == [0, "deleted snapshot 'data'; removed 1 stored contents no other snapshot uses "
                                  "(97.7 KiB freed)\n", ""]
    assert steps["gc"] == [0, "removed 0 stored contents no snapshot uses (0 B freed)\n", ""]
    after = steps["after"]
    assert after["top"] == [".stagekit", "data", "features", "filler", "runs"]  # no out/, no .restoring
    assert after["checkouts"] == [] and after["tmp"] == [] and after["snapshots"] == ["golden"]
    assert after["verify"] and after["free"] > 0
