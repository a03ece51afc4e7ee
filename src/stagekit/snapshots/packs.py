"""Packs: small contents stored many to a file, so that reading them back costs one read, not one file each.

Opening, reading and closing a 4 KiB file costs more than hashing it, so a store of thousands of loose
small objects verifies at a fraction of sha256's speed however it is read. A content smaller than
``PACK_BELOW`` is therefore appended to a pack, ``.stagekit/packs/<id>.pack``, as git does; bigger ones
stay files of their own, which a restore can reflink.

* ``<id>.idx`` lists a pack's contents: a magic line, then a line "sha256 offset size" per content, then
  "checksum " and the sha256 of everything before it, so a damaged index is known to be damaged rather
  than misread.
* A pack is named (and that made durable) before its index: the index is what puts a pack's contents in
  the store, and it only ever names a whole pack. A pack without an index is a crash's leftover.
* A named pack is never written to again. Garbage collection copies the live contents of a pack that holds
  dead ones into a new pack, then removes the old index and pack (``collect``).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import operator
import os
from collections.abc import Callable, Iterable
from itertools import repeat
from typing import NamedTuple

from stagekit.atomic import atomic_write_bytes, fsync_dir

PACK_BELOW = 64 << 10  # contents smaller than this are packed: below it, opening a file costs more than 10%
PACK_MAX = 256 << 20  # a pack being written is closed, and another begun, past this size
WINDOW = 1 << 20  # verify reads a pack in runs of up to this many bytes (or one content, if bigger)
_MAGIC = b"stagekit-pack-index 1\n"

Writer = Callable[[int, memoryview], int]  # os.write


Location = tuple[str, int, int]  # pack path, offset, size: plain tuples, made in C by the 10,000


class PackDamagedError(ValueError):
    """A pack index that cannot be read."""


# --- indexes -------------------------------------------------------------------------------------------


def index_bytes(entries: Iterable[tuple[str, int, int]]) -> bytes:
    body = _MAGIC + "".join(f"{d} {off} {size}\n" for d, off, size in entries).encode("ascii")
    return body + b"checksum " + hashlib.sha256(body).hexdigest().encode("ascii") + b"\n"


class Index(NamedTuple):
    """A pack's index as columns, in offset order: the digest, offset and size of each content."""

    digests: list[str]
    offsets: list[int]
    sizes: list[int]

    def entries(self) -> list[tuple[str, int, int]]:
        return list(zip(self.digests, self.offsets, self.sizes, strict=True))


def read_columns(path: str) -> Index:
    """The index at ``path``, as columns; ``PackDamagedError`` if it is damaged."""
    with open(path, "rb") as f:
        data = f.read()
    body, _, checksum = data.rpartition(b"checksum ")
    if not body.startswith(_MAGIC) or checksum != hashlib.sha256(body).hexdigest().encode("ascii") + b"\n":
        raise PackDamagedError(f"pack index {path!r} is damaged")
    words = body[len(_MAGIC):].split()  # split, decode and int in C: 10,000 entries in 5 ms
    try:
        if len(words) % 3:
            raise ValueError("not whole entries")
        index = Index(b" ".join(words[0::3]).decode("ascii").split(), list(map(int, words[1::3])),
                      list(map(int, words[2::3])))
    except ValueError as exc:
        raise PackDamagedError(f"pack index {path!r} is damaged: {exc}") from exc
    if index.offsets != sorted(index.offsets):
        raise PackDamagedError(f"pack index {path!r} is damaged: offsets out of order")
    if any(len(d) != 64 for d in index.digests) or _not_hex(b"".join(words[0::3])):
        raise PackDamagedError(f"pack index {path!r} is damaged: a malformed digest")
    return index


def _not_hex(text: bytes) -> bool:
    try:
        bytes.fromhex(text.decode("ascii"))
    except ValueError:
        return True
    return False


def pack_of(index: str) -> str:
    return index[:-4] + ".pack"


class Packs:
    """The packs of a store as they are now: their indexes, where each packed content is, which are damaged."""

    def __init__(self, packs_dir: str) -> None:
        self.columns: dict[str, Index] = {}  # index path -> the index, in the order ``where`` prefers them
        self.damaged: list[str] = []
        try:
            names = sorted(os.listdir(packs_dir))
        except FileNotFoundError:
            names = []
        for name in names:
            if name.endswith(".idx"):
                path = f"{packs_dir}/{name}"
                try:
                    self.columns[path] = read_columns(path)
                except (OSError, PackDamagedError):
                    self.damaged.append(path)

    @functools.cached_property
    def indexes(self) -> dict[str, list[tuple[str, int, int]]]:
        """index path -> its entries (digest, offset, size), in offset order."""
        return {path: index.entries() for path, index in self.columns.items()}

    @functools.cached_property
    def where(self) -> dict[str, Location]:
        """digest -> (pack, offset, size) of where it is; the first index to name it wins."""
        where: dict[str, Location] = {}
        for path, (digests, offsets, sizes) in reversed(self.columns.items()):
            where.update(zip(digests, zip(repeat(pack_of(path)), offsets, sizes, strict=False), strict=True))
        return where

    def runs(self, wanted: Iterable[str]) -> list[Run]:
        """The packed contents among ``wanted``, each once (from the pack ``where`` names), in runs of
        neighbours no longer than ``WINDOW`` bytes, in reading order."""
        out: list[Run] = []
        todo = set(wanted)
        for path, index in self.columns.items():
            if todo.issuperset(index.digests):  # the pack is all wanted: the common case, no per-content work
                digests, offsets, sizes = index
            else:
                keep = [i for i, d in enumerate(index.digests) if d in todo]
                if not keep:
                    continue
                digests = [index.digests[i] for i in keep]
                offsets = [index.offsets[i] for i in keep]
                sizes = [index.sizes[i] for i in keep]
            todo.difference_update(digests)
            ends = list(map(operator.add, offsets, sizes))
            pack, j = pack_of(path), 0
            while j < len(digests):  # a loop per run, not per content
                k = max(j + 1, bisect.bisect_right(ends, offsets[j] + WINDOW, j))
                out.append(Run(pack, offsets[j], max(ends[j:k]), digests[j:k], offsets[j:k], sizes[j:k]))
                j = k
        return out


# --- writing -------------------------------------------------------------------------------------------


class PackWriter:
    """Appends contents to temporary packs in ``tmp``; ``install`` names them, with their indexes, in the store.

    Not thread-safe: its owner serialises ``add``.
    """

    def __init__(self, tmp: str, prefix: str, write: Writer = os.write) -> None:
        self.tmp, self.prefix, self._write = tmp, prefix, write
        self.done: list[tuple[str, list[tuple[str, int, int]]]] = []  # finished temporaries and their entries
        self._fd = -1
        self._path = ""
        self._entries: list[tuple[str, int, int]] = []
        self._size = 0

    def add(self, digest: str, data: memoryview) -> None:
        if self._fd < 0 or self._size >= PACK_MAX:
            self._begin()
        write_all(self._fd, data, self._write)
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
    digests: list[str]
    offsets: list[int]
    sizes: list[int]


_digest = operator.methodcaller("digest")
Hash = tuple[str, int]  # sha256 and size of what a pack holds for a content
Differences = dict[str, "Hash | None"]  # digest -> what the store holds instead (None: nothing)


def check_run(run: Run, view: memoryview) -> Differences:
    """The contents of ``run`` whose bytes in the pack do not hash to their digest: what they hash to instead.

    Every loop over the contents runs in C (map, slice): Python's work per content is what costs, at 4 KiB
    as much as hashing.
    """
    try:
        fd = os.open(run.pack, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return dict.fromkeys(run.digests)
    try:
        got = view[:os.preadv(fd, [view[:run.end - run.start]], run.start)]
    finally:
        os.close(fd)
    starts = list(map(operator.sub, run.offsets, repeat(run.start)))
    pieces = list(map(got.__getitem__, map(slice, starts, map(operator.add, starts, run.sizes))))
    if b"".join(map(_digest, map(hashlib.sha256, pieces))) == bytes.fromhex("".join(run.digests)):
        return {}  # the common case, in one comparison; sizes cannot differ where hashes agree
    actual = [hashlib.sha256(p).hexdigest() for p in pieces]
    return {d: (a, len(p)) for d, a, p in zip(run.digests, actual, pieces, strict=True) if a != d}


class PackReader:
    """Reads contents out of packs, keeping each pack open until ``close``."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def read(self, loc: Location) -> bytes:
        pack, offset, size = loc
        fd = self._fds.get(pack)
        if fd is None:
            fd = self._fds[pack] = os.open(pack, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        data = os.pread(fd, size, offset)
        if len(data) != size:
            raise OSError(f"pack {pack!r} is truncated: {len(data)} of {size} bytes at {offset}")
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
        write_all(fd, memoryview(data))
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


# --- collecting garbage --------------------------------------------------------------------------------


def collect(packs_dir: str, keep: set[str], tmp: str, sync: Callable[[str], None]) -> tuple[int, int]:
    """Drop the contents not in ``keep`` from the store's packs: (contents removed, bytes freed).

    A pack with nothing to keep is removed; one with some is rewritten with only those (a content two packs
    hold is kept in the first). A pack whose index is damaged, or that is shorter than its index says, is
    left alone, contents and all, for verify to report; a pack that no index names (a creation that crashed
    between naming the two) is removed. The caller holds the write
    lock and the exclusive gc lock, so nothing else reads or writes packs meanwhile.
    """
    packs = Packs(packs_dir)
    removed = freed = 0
    claimed: set[str] = set()
    doomed: list[str] = []  # indexes whose packs are dropped or rewritten
    writer = PackWriter(tmp, f"gc-{os.getpid()}-")
    try:
        with PackReader() as reader:
            for index, entries in packs.indexes.items():  # in the order ``where`` prefers them
                live = [e for e in entries if e[0] in keep and e[0] not in claimed]
                if len(live) < len(entries) and _size(pack_of(index)) < max(o + n for _, o, n in entries):
                    continue  # a truncated pack: left alone, for verify to report (and no copy of it claimed)
                claimed.update(e[0] for e in live)
                if len(live) < len(entries):
                    doomed.append(index)
                    removed += len(entries) - len(live)
                    for digest, offset, size in live:
                        writer.add(digest, memoryview(reader.read((pack_of(index), offset, size))))
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


def write_all(fd: int, data: memoryview, write: Writer = os.write) -> None:
    """Write all of ``data`` to ``fd`` with ``write`` (``os.write``, or a test's stand-in for a full disk)."""
    while data:
        data = data[write(fd, data):]
