"""Packs: small contents many to a file behind a checksummed index; verify, restore, gc and failures."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from stagekit.snapshots import packs as _packs
from stagekit.snapshots import store as _store
from stagekit.snapshots.forked import can_fork
from stagekit.snapshots.packs import PACK_BELOW, PackDamagedError, Packs, Run, index_bytes, pack_of, read_columns
from stagekit.snapshots.snapshot import SnapshotError
from stagekit.snapshots.workspace import Workspace

KIB = 1024


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace(root).init()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def small(i: int, size: int = KIB) -> bytes:
    return (f"content {i:05d} ".encode() * (size // 14 + 1))[:size]


def big(i: int) -> bytes:
    return small(10_000 + i, 100 * KIB)


def write(ws: Workspace, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = ws.data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def pack_files(ws: Workspace) -> list[str]:
    return sorted(p.name for p in ws.packs_dir.iterdir())


def suffixes(ws: Workspace) -> list[str]:
    return sorted(Path(name).suffix for name in pack_files(ws))


def loose(ws: Workspace) -> set[str]:
    return {p.name for p in ws.objects_dir.rglob("*") if p.is_file()}


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def tamper(pack: str, offset: int, size: int) -> str:
    """Overwrite 4 bytes of the content at ``offset`` in place (as root can); the sha256 it then has."""
    os.chmod(pack, 0o644)
    with open(pack, "r+b") as f:
        f.seek(offset + 10)
        f.write(b"XXXX")
        f.seek(offset)
        return sha(f.read(size))


ENTRIES = [(sha(small(i)), i * KIB, KIB) for i in range(5)] + [(sha(b""), 5 * KIB, 0)]
GOOD = index_bytes(ENTRIES)
MAGIC = len(b"stagekit-pack-index 1\n")
CHECKSUM = len(b"checksum ") + 64 + 1


def checksummed(body: bytes) -> bytes:
    return body + b"checksum " + sha(body).encode() + b"\n"


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "flipped entry byte": lambda d: d[:MAGIC + 40] + bytes([d[MAGIC + 40] ^ 1]) + d[MAGIC + 41:],
    "flipped checksum byte": lambda d: d[:-2] + bytes([d[-2] ^ 1]) + d[-1:],
    "truncated by a byte": lambda d: d[:-1],
    "truncated by an entry": lambda d: d[:MAGIC] + d[MAGIC:-CHECKSUM].split(b"\n", 1)[1] + d[-CHECKSUM:],
    "empty": lambda d: b"",
    "wrong magic": lambda d: checksummed(b"stagekit-pack-index 2\n" + d[MAGIC:-CHECKSUM]),
    "partial entry, valid checksum": lambda d: checksummed(d[:-CHECKSUM].rstrip(b"\n").rsplit(b" ", 1)[0] + b"\n"),
    "not a number, valid checksum": lambda d: checksummed(d[:-CHECKSUM].replace(b" 0\n", b" zero\n")),
    "not a digest, valid checksum": lambda d: checksummed(d[:MAGIC] + b"z" + d[MAGIC + 1:-CHECKSUM]),
    "offsets out of order, valid checksum": lambda d: checksummed(
        d[:MAGIC] + b"".join(reversed(d[MAGIC:-CHECKSUM].splitlines(keepends=True)))),
}


def test_index_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "p.idx"
    path.write_bytes(GOOD)
    assert read_columns(str(path)).entries() == ENTRIES
    assert GOOD.startswith(b"stagekit-pack-index 1\n") and len(GOOD.splitlines()) == len(ENTRIES) + 2
    assert GOOD.splitlines()[1] == f"{ENTRIES[0][0]} 0 1024".encode()  # readable: digest, offset, size
    assert pack_of(str(path)) == str(tmp_path / "p.pack")
    path.write_bytes(index_bytes([]))
    assert read_columns(str(path)).entries() == []


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_index_is_refused(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "p.idx"
    path.write_bytes(DAMAGE[damage](GOOD))
    with pytest.raises(PackDamagedError, match="is damaged"):
        read_columns(str(path)).entries()
    assert Packs(str(tmp_path)).damaged == [str(path)] and Packs(str(tmp_path)).indexes == {}


def test_small_contents_share_one_pack_and_big_ones_stay_files_of_their_own(ws: Workspace) -> None:
    files = {f"small/{i:02d}": small(i % 40) for i in range(50)}  # 40 distinct contents
    files |= {"big/a": big(1), "big/b": big(2), "edge/below": small(98, PACK_BELOW - 1),
              "edge/at": small(99, PACK_BELOW)}
    write(ws, files)
    result = ws.create_snapshot("s", ["data"])
    distinct = set(files.values())
    assert result.objects_added == len(distinct) == 44
    assert result.bytes_added == sum(map(len, distinct))
    assert suffixes(ws) == [".idx", ".pack"]
    assert loose(ws) == {sha(big(1)), sha(big(2)), sha(files["edge/at"])}
    ((index, entries),) = Packs(str(ws.packs_dir)).indexes.items()
    packed = {c for c in distinct if len(c) < PACK_BELOW}
    assert sorted(d for d, _, _ in entries) == sorted(map(sha, packed))
    data = Path(pack_of(index)).read_bytes()
    assert len(data) == sum(map(len, packed))
    assert all(sha(data[off:off + size]) == d for d, off, size in entries)
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in (index, pack_of(index))} == {0o444}
    before = pack_files(ws)
    for name, rehash in [("t", False), ("u", True)]:  # from the stat cache, then re-read: nothing is new
        again = ws.create_snapshot(name, ["data"], rehash=rehash)
        assert (again.objects_added, again.bytes_added) == (0, 0)
        assert pack_files(ws) == before and len(loose(ws)) == 3


def test_runs_group_neighbours_split_at_the_window_and_skip_unwanted_and_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = [sha(b"%d" % i) for i in range(10)]
    a = [(d[i], i * 1000, 1000) for i in range(8)]  # contents 0-7, 1000 bytes each
    b = [(d[2], 0, 1000), (d[8], 1000, 500), (d[9], 1500, 1000)]  # 2 again (the first pack's is read), 8, 9
    (tmp_path / "a.idx").write_bytes(index_bytes(a))
    (tmp_path / "b.idx").write_bytes(index_bytes(b))
    pa, pb = str(tmp_path / "a.pack"), str(tmp_path / "b.pack")
    packs = Packs(str(tmp_path))
    wanted = set(d) - {d[3]}
    monkeypatch.setattr(_packs, "WINDOW", 3000)
    assert packs.runs(wanted) == [run(pa, 0, 3000, a[0:3]), run(pa, 4000, 7000, a[4:7]), run(pa, 7000, 8000, a[7:8]),
                                  run(pb, 1000, 2500, b[1:3])]
    monkeypatch.setattr(_packs, "WINDOW", 1 << 20)
    assert packs.runs(wanted) == [run(pa, 0, 8000, a[:3] + a[4:]), run(pb, 1000, 2500, b[1:3])]  # 3 read, unused
    monkeypatch.setattr(_packs, "WINDOW", 500)  # smaller than a content: one content per run
    assert [r.digests for r in packs.runs({d[0], d[1]})] == [[d[0]], [d[1]]]
    assert packs.runs({d[2], "f" * 64}) == [run(pa, 2000, 3000, [a[2]])]
    assert packs.runs(set()) == []


def run(pack: str, start: int, end: int, entries: list[tuple[str, int, int]]) -> Run:
    return Run(pack, start, end, [e[0] for e in entries], [e[1] for e in entries], [e[2] for e in entries])


def test_verify_finds_tampered_unindexed_and_missing_packed_contents(ws: Workspace) -> None:
    files = {f"f{i}": small(i) for i in range(6)} | {"big": big(0)}
    write(ws, files)
    ws.create_snapshot("s", ["data"])
    assert ws.verify_snapshot("s").ok
    packs = Packs(str(ws.packs_dir))
    ((index, _),) = packs.indexes.items()
    pack, offset, size = packs.where[sha(files["f3"])]
    tampered = tamper(pack, offset, size)
    report = ws.verify_snapshot("s")
    assert [(p.kind, p.path) for p in report.problems] == [("changed", "data/f3")]
    assert f"now has 1024 bytes hashing to {tampered[:16]}" in report.problems[0].detail

    packed = [f"data/f{i}" for i in range(6)]
    good = Path(index).read_bytes()
    os.chmod(index, 0o644)
    Path(index).write_bytes(DAMAGE["flipped entry byte"](good))
    report = ws.verify_snapshot("s")
    assert [(p.kind, p.path) for p in report.problems] == [("missing", p) for p in packed]
    assert all(f"damaged pack index: {os.path.basename(index)}" in p.detail for p in report.problems)

    Path(index).write_bytes(good)
    os.unlink(pack)
    report = ws.verify_snapshot("s")
    assert [(p.kind, p.path) for p in report.problems] == [("missing", p) for p in packed]
    assert not any("damaged" in p.detail for p in report.problems)


CHECK_SHARES = """
import hashlib, os, sys, threading
from stagekit.snapshots import packs as _packs
from stagekit.snapshots.forked import can_fork, map_shares
from stagekit.snapshots.packs import Packs, check_run

assert can_fork()
stop = threading.Event(); thread = threading.Thread(target=stop.wait); thread.start()
assert not can_fork()  # a second thread: forking is no longer safe
stop.set(); thread.join()

_packs.WINDOW = 4096  # runs of four 1 KiB contents
packs = Packs(sys.argv[1])
runs = packs.runs(packs.where)
shares = [runs[0::2], runs[1::2]]  # the first is checked in this process, the second in a child
assert len(runs) >= 6, runs
expected = {}
for run, (digest, offset, size) in [(shares[0][1], _packs.Index(*shares[0][1][3:]).entries()[1]),
                                   (shares[1][2], _packs.Index(*shares[1][2][3:]).entries()[2])]:
    os.chmod(run.pack, 0o644)
    with open(run.pack, "r+b") as f:
        f.seek(offset + 5)
        f.write(b"XXXX")
        f.seek(offset)
        expected[digest] = (hashlib.sha256(f.read(size)).hexdigest(), size)
forks = []
os.register_at_fork(after_in_parent=lambda: forks.append(1))

def check(share):
    view = memoryview(bytearray(_packs.WINDOW))
    return os.getpid(), dict(kv for run in share for kv in check_run(run, view).items())

serial = [check(share)[1] for share in shares]
assert serial[0].keys() | serial[1].keys() == expected.keys() and serial[0] | serial[1] == expected, serial
got = map_shares(check, shares)
assert [g[1] for g in got] == serial and len(forks) == 1, (got, forks)
assert got[0][0] == os.getpid() != got[1][0]

def fail(share):
    if share is shares[1]:
        raise ValueError("the second share")
try:
    map_shares(fail, shares)
    raise AssertionError("a share that fails in the child must fail here too")
except ValueError as exc:
    assert str(exc) == "the second share" and len(forks) == 2

os.register_at_fork(after_in_child=lambda: os._exit(3))  # a child that dies: its share is done here
got = map_shares(check, shares)
assert got == [(os.getpid(), serial[0]), (os.getpid(), serial[1])] and len(forks) == 3, got
print("ok")
"""


def test_shares_checked_in_forked_children_find_damage_in_every_share(ws: Workspace) -> None:
    assert isinstance(can_fork(), bool)
    write(ws, {f"f{i:02d}": small(i) for i in range(30)})
    ws.create_snapshot("s", ["data"])
    proc = subprocess.run([sys.executable, "-c", CHECK_SHARES, str(ws.packs_dir)], capture_output=True, text=True,
                          check=False)
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr


VERIFY_FORKED = """
import json, os, sys
from stagekit.snapshots import store as _store, verify as _snapshot_verify
from stagekit.snapshots.forked import can_fork
from stagekit.snapshots.workspace import Workspace

_snapshot_verify._SPLIT_LINES, _store._WORKERS = 0, 2  # a share of the manifest per process, however short
forks = []
os.register_at_fork(after_in_parent=lambda: forks.append(1))
assert can_fork()
seen = []  # progress is heard of the share verified here only, against the whole manifest's totals
r = Workspace(sys.argv[1]).verify_snapshot("s", progress=seen.append)
print(json.dumps({"forks": len(forks), "files": r.files, "size": r.size,
                  "problems": [[p.kind, p.path, p.detail] for p in r.problems],
                  "progress": sorted({(p.total, p.total_bytes) for p in seen}), "heard": seen[-1].done}))
"""


def test_verify_forked_over_shares_of_the_manifest_finds_the_same(ws: Workspace) -> None:
    files = {f"f{i:02d}": small(i) for i in range(40)} | {"big": big(0)}
    write(ws, files)
    ws.create_snapshot("s", ["data"])
    where = Packs(str(ws.packs_dir)).where
    for rel in ("f05", "f30"):  # data/big and f00-f19 are the first share, f20-f39 the second
        tamper(*where[sha(files[rel])])
    (ws.objects_dir / sha(big(0))[:2] / sha(big(0))).unlink()
    here = ws.verify_snapshot("s")  # a short manifest: verified in this process
    assert [(p.kind, p.path) for p in here.problems] == [
        ("missing", "data/big"), ("changed", "data/f05"), ("changed", "data/f30")]
    proc = subprocess.run([sys.executable, "-c", VERIFY_FORKED, str(ws.root)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    total = sum(map(len, files.values()))
    assert json.loads(proc.stdout) == {"forks": 1, "files": 41, "size": total,
                                       "problems": [[p.kind, p.path, p.detail] for p in here.problems],
                                       "progress": [[41, total]], "heard": 21}
    assert (here.files, here.size) == (41, sum(map(len, files.values())))


def test_restore_writes_packed_contents_with_their_modes(ws: Workspace, tmp_path: Path) -> None:
    spec = {"run.sh": (b"#!/bin/sh\necho hi\n", 0o755), "notes/a.txt": (small(1), 0o644), "empty": (b"", 0o640),
            "notes/private": (small(2), 0o600), "big/x": (big(1), 0o640), "big/y": (big(2), 0o644)}
    files, modes = {r: d for r, (d, _) in spec.items()}, {r: m for r, (_, m) in spec.items()}
    write(ws, files)
    for rel, mode in modes.items():
        (ws.data_dir / rel).chmod(mode)
    ws.create_snapshot("s", ["data"])
    result = ws.restore_snapshot("s", tmp_path / "copy")
    assert tree(result.path / "data") == files
    for rel, mode in modes.items():
        st = (result.path / "data" / rel).stat()
        assert (rel, stat.S_IMODE(st.st_mode), st.st_nlink) == (rel, mode, 1)
    assert result.method in {"copy", "copy+reflink"}

    linked = ws.restore_snapshot("s", tmp_path / "linked", hardlink=True)
    assert linked.method == "copy+hardlink"
    assert tree(linked.path / "data") == files
    for rel, data in files.items():
        path = linked.path / "data" / rel
        if len(data) >= PACK_BELOW:
            assert os.path.samefile(path, ws.objects_dir / sha(data)[:2] / sha(data))
        else:  # a packed content has no file to link to: copied
            assert (stat.S_IMODE(path.stat().st_mode), path.stat().st_nlink) == (modes[rel], 1)


def test_delete_rewrites_packs_to_hold_only_live_contents(ws: Workspace, tmp_path: Path) -> None:
    shared = {f"shared{i}": small(i) for i in range(5)}
    only_a = {f"a{i}": small(100 + i) for i in range(3)} | {"a-big": big(1)}
    only_b = {f"b{i}": small(200 + i) for i in range(2)}
    write(ws, shared | only_a)
    ws.create_snapshot("a", ["data"])
    for rel in only_a:
        (ws.data_dir / rel).unlink()
    write(ws, only_b)
    ws.create_snapshot("b", ["data"])
    assert len(Packs(str(ws.packs_dir)).indexes) == 2

    result = ws.delete_snapshot("a")
    assert (result.objects_removed, result.bytes_freed) == (4, 3 * KIB + 100 * KIB)
    live = shared | only_b
    packs = Packs(str(ws.packs_dir))
    assert sorted(d for es in packs.indexes.values() for d, _, _ in es) == sorted(map(sha, live.values()))
    assert sum(os.path.getsize(pack_of(i)) for i in packs.indexes) == sum(map(len, live.values()))
    assert suffixes(ws) == [".idx", ".idx", ".pack", ".pack"] and loose(ws) == set()
    assert ws.verify_snapshot("b").ok
    assert tree(ws.restore_snapshot("b", tmp_path / "out").path / "data") == live
    assert ws.gc() == (0, 0)

    assert ws.delete_snapshot("b").objects_removed == 7
    assert pack_files(ws) == []


def test_gc_removes_a_pack_without_index_and_leaves_one_with_a_damaged_index(ws: Workspace) -> None:
    write(ws, {f"f{i}": small(i) for i in range(4)})
    ws.create_snapshot("s", ["data"])
    ((index, _),) = Packs(str(ws.packs_dir)).indexes.items()
    orphan = ws.packs_dir / "0123456789abcdef01234567.pack"  # a crash between naming a pack and its index
    shutil.copyfile(pack_of(index), orphan)
    assert ws.gc() == (0, 4 * KIB)
    assert not orphan.exists() and len(pack_files(ws)) == 2 and ws.verify_snapshot("s").ok

    os.chmod(index, 0o644)
    Path(index).write_bytes(DAMAGE["flipped checksum byte"](Path(index).read_bytes()))
    before = {p.name: p.read_bytes() for p in ws.packs_dir.iterdir()}
    assert ws.gc() == (0, 0)
    ws.delete_snapshot("s")  # nothing refers to its contents now, but they cannot be told apart
    assert {p.name: p.read_bytes() for p in ws.packs_dir.iterdir()} == before


def test_gc_leaves_a_truncated_pack_alone_for_verify_to_report(ws: Workspace) -> None:
    write(ws, {f"f{i}": small(i) for i in range(4)})
    ws.create_snapshot("a", ["data"])
    os.unlink(ws.data_dir / "f0")
    ws.create_snapshot("b", ["data"])
    ((index, _),) = Packs(str(ws.packs_dir)).indexes.items()
    os.chmod(pack_of(index), 0o644)
    os.truncate(pack_of(index), 3 * KIB + 100)  # the last content loses its tail
    before = {p.name: p.read_bytes() for p in ws.packs_dir.iterdir()}
    ws.delete_snapshot("a")  # f0's content is dead, but the pack cannot be rewritten whole: no error, no change
    assert {p.name: p.read_bytes() for p in ws.packs_dir.iterdir()} == before
    assert [(p.kind, p.path) for p in ws.verify_snapshot("b").problems] == [("changed", "data/f3")]


def test_full_disk_while_packing_leaves_no_pack_and_no_temporary(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(ws, {"keep": small(0)})
    ws.create_snapshot("before", ["data"])
    before = pack_files(ws)
    write(ws, {f"f{i:02d}": small(i + 1) for i in range(20)})
    calls = [0]

    def full_after_three(fd: int, data: memoryview) -> int:
        calls[0] += 1
        if calls[0] > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)

    monkeypatch.setattr(_store, "_write", full_after_three)
    with pytest.raises(SnapshotError, match="No space left on device"):
        ws.create_snapshot("s", ["data"])
    monkeypatch.undo()
    assert calls[0] == 4
    assert pack_files(ws) == before and list(ws.tmp_dir.iterdir()) == []
    assert [s.name for s in ws.snapshots()] == ["before"]
    assert ws.create_snapshot("s", ["data"]).objects_added == 20 and ws.verify_snapshot("s").ok


def index_write_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> Path:
        raise OSError(errno.EIO, "interrupted")

    monkeypatch.setattr(_packs, "atomic_write_bytes", interrupted)


def test_interruption_between_naming_a_pack_and_its_index(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    write(ws, {f"f{i}": small(i) for i in range(5)})
    index_write_fails(monkeypatch)
    with pytest.raises(SnapshotError, match="interrupted"):
        ws.create_snapshot("s", ["data"])
    monkeypatch.undo()
    assert ws.snapshots() == [] and list(ws.tmp_dir.iterdir()) == []
    assert pack_files(ws) == []  # the rollback removed the pack it had named, not only the temporaries
    assert ws.gc() == (0, 0) and pack_files(ws) == []


def test_gc_interrupted_while_rewriting_a_pack_keeps_the_old_one(ws: Workspace, monkeypatch: pytest.MonkeyPatch,
                                                                 ) -> None:
    write(ws, {"shared": small(0), "gone": small(1)})
    ws.create_snapshot("a", ["data"])
    (ws.data_dir / "gone").unlink()
    ws.create_snapshot("b", ["data"])
    (ws.snapshots_dir / "a.json").unlink()  # as a delete does before it collects
    before = {p.name: p.read_bytes() for p in ws.packs_dir.iterdir()}
    index_write_fails(monkeypatch)
    with pytest.raises(OSError, match="interrupted"):
        ws.gc()
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in ws.packs_dir.iterdir()} == before and list(ws.tmp_dir.iterdir()) == []
    assert ws.verify_snapshot("b").ok
    assert ws.gc() == (1, KIB) and ws.verify_snapshot("b").ok
