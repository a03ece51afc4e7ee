"""Packs: small contents stored many to a file, so that reading them back costs one read, not one file each.

Opening, reading and closing a 4 KiB file costs more than hashing it, so a store of thousands of loose
small objects verifies at a fraction of sha256's speed however it is read. A content smaller than
``PACK_BELOW`` is therefore appended to a pack, ``.stagekit/packs/<id>.pack``, as git does; bigger ones
stay files of their own, which a restore can reflink.

* ``<id>.idx`` lists a pack's contents: a magic line, then (sha256 digest, offset, size) per content, then
  the sha256 of everything before it, so a damaged index is known to be damaged rather than misread.
* A pack is named (and that made durable) before its index: the index is what puts a pack's contents in
  the store, and it only ever names a whole pack. A pack without an index is a crash's leftover.
* A named pack is never written to again. Garbage collection copies the live contents of a pack that holds
  dead ones into a new pack, then removes the old index and pack (``collect``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import struct
from collections.abc import Callable, Container, Iterable
from typing import NamedTuple

from stagekit.atomic import atomic_write_bytes, fsync_dir

PACK_BELOW = 64 << 10  # contents smaller than this are packed: below it, opening a file costs more than 10%
PACK_MAX = 256 << 20  # a pack being written is closed, and another begun, past this size
WINDOW = 1 << 20  # verify reads a pack in runs of up to this many bytes
_GAP = 1 << 20  # contents further apart than this are read in separate runs
_MAGIC = b"stagekit-pack-index 1\n"
_ENTRY = struct.Struct(">32sQQ")  # digest, offset, size

Writer = Callable[[int, memoryview], None]


class Location(NamedTuple):
    pack: str  # path of the .pack file
    offset: int
    size: int


class PackDamagedError(ValueError):
    """A pack index that cannot be read."""


# --- indexes -------------------------------------------------------------------------------------------


def index_bytes(entries: Iterable[tuple[str, int, int]]) -> bytes:
    body = _MAGIC + b"".join(_ENTRY.pack(bytes.fromhex(d), off, size) for d, off, size in entries)
    return body + hashlib.sha256(body).digest()


def read_index(path: str) -> list[tuple[str, int, int]]:
    """(digest, offset, size) of each content of the pack whose index is at ``path``."""
    with open(path, "rb") as f:
        data = f.read()
    body = memoryview(data)[:-32]
    if (not data.startswith(_MAGIC) or (len(body) - len(_MAGIC)) % _ENTRY.size
            or hashlib.sha256(body).digest() != data[-32:]):
        raise PackDamagedError(f"pack index {path!r} is damaged")
    return [(d.hex(), off, size) for d, off, size in _ENTRY.iter_unpack(body[len(_MAGIC):])]


def pack_of(index: str) -> str:
    return index[:-4] + ".pack"


class Packs:
    """The packs of a store as they are now: their indexes, where each packed content is, which are damaged."""

    def __init__(self, packs_dir: str) -> None:
        self.indexes: dict[str, list[tuple[str, int, int]]] = {}  # index path -> its entries, in offset order
        self.damaged: list[str] = []
        self._where: dict[str, Location] | None = None
        try:
            names = sorted(os.listdir(packs_dir))
        except FileNotFoundError:
            names = []
        for name in names:
            if name.endswith(".idx"):
                path = f"{packs_dir}/{name}"
                try:
                    self.indexes[path] = read_index(path)
                except (OSError, PackDamagedError):
                    self.damaged.append(path)

    @property
    def where(self) -> dict[str, Location]:
        """digest -> where the store has it (the first pack that does)."""
        if self._where is None:
            self._where = {}
            for index, entries in self.indexes.items():
                pack = pack_of(index)
                for digest, offset, size in entries:
                    self._where.setdefault(digest, Location(pack, offset, size))
        return self._where

    def runs(self, wanted: Container[str]) -> list[Run]:
        """The packed contents among ``wanted``, in runs of neighbours: reading order, each content once."""
        out: list[Run] = []
        seen: set[str] = set()
        for index, entries in self.indexes.items():
            pack, start, end = pack_of(index), 0, 0
            contents: list[tuple[str, int, int]] = []  # of the run being built
            for entry in entries:
                digest, offset, size = entry
                if digest not in wanted or digest in seen:
                    continue
                seen.add(digest)
                if contents and (offset + size - start > WINDOW or offset - end > _GAP):
                    out.append(Run(pack, start, end, contents))
                    contents = []
                if not contents:
                    start = offset
                contents.append(entry)
                end = max(end, offset + size)
            if contents:
                out.append(Run(pack, start, end, contents))
        return out


# --- writing -------------------------------------------------------------------------------------------


class PackWriter:
    """Appends contents to temporary packs in ``tmp``; ``install`` names them, with their indexes, in the store.

    Not thread-safe: its owner serialises ``add``.
    """

    def __init__(self, tmp: str, prefix: str, write_all: Writer) -> None:
        self.tmp, self.prefix, self._write_all = tmp, prefix, write_all
        self.done: list[tuple[str, list[tuple[str, int, int]]]] = []  # finished temporaries and their entries
        self._fd = -1
        self._path = ""
        self._entries: list[tuple[str, int, int]] = []
        self._size = 0

    def add(self, digest: str, data: memoryview) -> None:
        if self._fd < 0 or self._size >= PACK_MAX:
            self._begin()
        self._write_all(self._fd, data)
        self._entries.append((digest, self._size, len(data)))
        self._size += len(data)

    def _begin(self) -> None:
        self.close()
        self._path = f"{self.tmp}/{self.prefix}pack{len(self.done)}"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        self._entries, self._size = [], 0
        self.done.append((self._path, self._entries))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def install(self, packs_dir: str, made: list[str]) -> None:
        """Name the finished packs (already durable: the caller synced their filesystem), then their indexes,
        adding each path to ``made`` as soon as it exists, for a rollback."""
        self.close()
        if not self.done:
            return
        os.makedirs(packs_dir, exist_ok=True)
        named: list[tuple[str, list[tuple[str, int, int]]]] = []
        for tmp, entries in self.done:
            base = f"{packs_dir}/{os.urandom(12).hex()}"
            os.rename(tmp, base + ".pack")
            made.append(base + ".pack")
            named.append((base, entries))
        self.done.clear()
        fsync_dir(packs_dir)  # every pack's name is durable before an index names it
        for base, entries in named:
            atomic_write_bytes(base + ".idx", index_bytes(entries), permissions=0o444)
            made.append(base + ".idx")


# --- reading -------------------------------------------------------------------------------------------


class Run(NamedTuple):
    """Contents lying close together in one pack, read with one call: bytes [start, end) of ``pack``."""

    pack: str
    start: int
    end: int
    contents: list[tuple[str, int, int]]  # digest, offset, size


Hash = tuple[str, int]  # sha256 and size of what a pack holds for a content
Differences = dict[str, "Hash | None"]  # digest -> what the store holds instead (None: nothing)


def check_run(run: Run, view: memoryview) -> Differences:
    """The contents of ``run`` whose bytes in the pack do not hash to their digest: what they hash to instead."""
    try:
        fd = os.open(run.pack, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return {c[0]: None for c in run.contents}
    try:
        got = view[:os.preadv(fd, [view[:run.end - run.start]], run.start)]
    finally:
        os.close(fd)
    sha256, start = hashlib.sha256, run.start
    differ: Differences = {}
    for digest, offset, size in run.contents:
        piece = got[offset - start:offset - start + size]
        if (actual := sha256(piece).hexdigest()) != digest or len(piece) != size:
            differ[digest] = (actual, len(piece))
    return differ


def can_fork() -> bool:
    """Whether this process may fork safely: on Linux, and it runs one thread (one no lock can be held by)."""
    try:
        return hasattr(os, "fork") and len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def check_runs(runs: list[Run], processes: int, done: Callable[[Run], None]) -> Differences:
    """``check_run`` of every run, on ``processes`` processes, calling ``done`` as each run (or share) ends.

    Hashing thousands of small contents is mostly Python work between short hashlib calls, and threads
    serialise on it (two threads were slower than one), so the runs are shared out between this process
    and forked children, which send back their differences, usually none. The caller must have checked
    ``can_fork``. A child that fails leaves its share to this process.
    """
    shares = [runs[i::processes] for i in range(processes)]
    children = [(share, *_fork_share(share)) for share in shares[1:] if share]
    view = memoryview(bytearray(WINDOW))
    differ: Differences = {}
    for run in shares[0]:
        differ.update(check_run(run, view))
        done(run)
    for share, pid, pipe in children:
        with os.fdopen(pipe, "rb") as f:
            reply = f.read()
        _, status = os.waitpid(pid, 0)
        if status == 0 and reply:
            differ.update(pickle.loads(reply))
        else:  # the child failed: do its share here
            for run in share:
                differ.update(check_run(run, view))
        for run in share:
            done(run)
    return differ


def _fork_share(share: list[Run]) -> tuple[int, int]:
    """Fork a child that checks ``share`` and writes its differences, pickled, to a pipe: (pid, read end)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        return pid, read
    try:  # the child: no return from here
        os.close(read)
        view = memoryview(bytearray(WINDOW))
        differ: Differences = {}
        for run in share:
            differ.update(check_run(run, view))
        reply = memoryview(pickle.dumps(differ))
        while reply:
            reply = reply[os.write(write, reply):]
        os._exit(0)
    except BaseException:
        os._exit(1)
    raise AssertionError("unreachable")  # pragma: no cover


class PackReader:
    """Reads contents out of packs, keeping each pack open until ``close``."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def read(self, loc: Location) -> bytes:
        fd = self._fds.get(loc.pack)
        if fd is None:
            fd = self._fds[loc.pack] = os.open(loc.pack, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        data = os.pread(fd, loc.size, loc.offset)
        if len(data) != loc.size:
            raise OSError(f"pack {loc.pack!r} is truncated: {len(data)} of {loc.size} bytes at {loc.offset}")
        return data

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> PackReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_new(path: str, data: bytes, mode: int) -> None:
    """Write ``data`` to the new file ``path`` with permissions ``mode``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


# --- collecting garbage --------------------------------------------------------------------------------


def collect(packs_dir: str, keep: set[str], tmp: str, sync: Callable[[str], None]) -> tuple[int, int]:
    """Drop the contents not in ``keep`` from the store's packs: (contents removed, bytes freed).

    A pack with nothing to keep is removed; one with some is rewritten with only those (a content two packs
    hold is kept in the first). A pack whose index is damaged is left alone, contents and all; a pack that
    no index names (a creation that crashed between naming the two) is removed. The caller holds the write
    lock and the exclusive gc lock, so nothing else reads or writes packs meanwhile.
    """
    packs = Packs(packs_dir)
    removed = freed = 0
    claimed: set[str] = set()
    doomed: list[str] = []  # indexes whose packs are dropped or rewritten
    writer = PackWriter(tmp, f"gc-{os.getpid()}-", _write_all)
    try:
        with PackReader() as reader:
            for index, entries in packs.indexes.items():
                live = [e for e in entries if e[0] in keep and e[0] not in claimed]
                claimed.update(e[0] for e in live)
                if len(live) < len(entries):
                    doomed.append(index)
                    removed += len(entries) - len(live)
                    for digest, offset, size in live:
                        writer.add(digest, memoryview(reader.read(Location(pack_of(index), offset, size))))
        writer.close()
        if writer.done:
            sync(tmp)  # the new packs are durable before the old ones go
        made: list[str] = []
        try:
            writer.install(packs_dir, made)
        except BaseException:
            for path in reversed(made):  # an index before its pack
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise
    except BaseException:
        writer.close()
        for path, _ in writer.done:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    freed -= sum(_size(p) for p in made if p.endswith(".pack"))
    for index in doomed:  # the index before its pack: an index never names a missing pack
        os.unlink(index)
    if doomed:
        fsync_dir(packs_dir)
    for index in doomed:
        freed += _size(pack_of(index))
        os.unlink(pack_of(index))
    named = {pack_of(i) for i in [*packs.indexes, *packs.damaged]} | set(made)
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(packs_dir):  # what crashed creations left: packs with no index, temporaries
            path = f"{packs_dir}/{name}"
            if name.endswith(".idx") or path in named or os.path.exists(path[:-5] + ".idx"):
                continue
            freed += _size(path) if name.endswith(".pack") else 0
            os.unlink(path)
    return removed, freed


def _size(path: str) -> int:
    with contextlib.suppress(FileNotFoundError):
        return os.stat(path).st_size
    return 0


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data):]
