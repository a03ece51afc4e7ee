"""The content-addressed object store beneath snapshots, and the reading of files into it.

It knows nothing of manifests: ``stagekit.snapshots.snapshot`` builds those from the digests this returns.

* ``object_path``: where a content of its own file lives, ``.stagekit/objects/<hh>/<sha256>``; contents
  smaller than ``PACK_BELOW`` (64 KiB) live in packs instead (``stagekit.snapshots.packs``), and ``Stored`` finds both.
* ``StatCache``: which files are unchanged since they were last hashed (``.stagekit/cache/stat.json``).
* ``Txn``: the contents one creation adds: temporary files and packs in ``.stagekit/tmp``, one ``syncfs``,
  then renamed into the store; ``rollback`` removes them all.
* ``store_files`` and ``hash_many``: chunked reads hashed with sha256, in batches on a thread pool. A file
  is stat'ed before and after its read and read again if it changed; one that keeps changing fails.
* ``check_stored``: re-hashing stored contents, packed ones a run of neighbours per read.
* ``remove_unreferenced``: garbage collection of contents no snapshot refers to.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, TypeVar

from stagekit.atomic import atomic_write_json, copy_file, sync_filesystem
from stagekit.snapshots.packs import (
    PACK_BELOW,
    WINDOW,
    Location,
    PackReader,
    Packs,
    PackWriter,
    check_run,
    collect,
    write_all,
    write_new,
)
from stagekit.snapshots.types import ALGORITHM, FORMAT, Progress, ProgressFn, SnapshotError
from stagekit.snapshots.workspace import ScanItem, Workspace, within

_BUF = 1 << 20  # read size; files smaller than this are hashed in memory before anything is written
_RETRIES = 3  # reads of a file that changes while read
_BATCH_FILES, _BATCH_BYTES = 256, 16 << 20  # work per thread-pool task: amortises the pool's overhead
# Threads for big files: hashlib and file I/O release the GIL, so storing overlaps hashing with writing.
# Small files cost Python overhead and syscalls that serialise on their directory; more threads only
# slowed those down (measured on 2 CPUs), as did more threads than CPUs.
_WORKERS = min(4, os.cpu_count() or 1)
_SMALL_FILES = 256 << 10  # below this average size, one thread

# Seams that tests replace to simulate a writer racing the reader and a full disk (through
# stagekit.snapshots.snapshot, which passes such writes on to this module, as it does for _read_once and _WORKERS).
_readv = os.readv
_write = os.write


def object_path(objects: str, digest: str) -> str:
    return f"{objects}/{digest[:2]}/{digest}"


class Stored:
    """Where the store keeps each content: in a pack (``packed``) or else in a file of its own (``path``)."""

    def __init__(self, ws: Workspace) -> None:
        self.objects, self.packs = str(ws.objects_dir), Packs(str(ws.packs_dir))
        self._packs_there: dict[str, bool] = {}

    @property
    def packed(self) -> dict[str, Location]:
        return self.packs.where

    def path(self, digest: str) -> str:
        return object_path(self.objects, digest)

    def exists(self, digest: str) -> bool:
        loc = self.packed.get(digest)
        if loc is None:
            return os.path.exists(self.path(digest))
        if (there := self._packs_there.get(loc[0])) is None:  # one stat per pack, not per content
            there = self._packs_there[loc[0]] = os.path.exists(loc[0])
        return there

    def damage(self) -> str:
        """Why contents may be missing beyond their removal: damaged pack indexes, if any."""
        if not self.packs.damaged:
            return ""
        return " (damaged pack index: " + ", ".join(os.path.basename(p) for p in self.packs.damaged) + ")"

    def copy_out(self, digest: str, dst: str, mode: int, reader: PackReader) -> str:
        """Write the content to the new file ``dst``; returns how ("reflink" or "copy")."""
        loc = self.packed.get(digest)
        if loc is None:
            return copy_file(self.path(digest), dst, permissions=mode)
        write_new(dst, reader.read(loc), mode)
        return "copy"


# --- stat cache ----------------------------------------------------------------------------------------


def stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _racy(st: os.stat_result, started_ns: int) -> bool:
    """Modified so shortly before it was read that a later write might not move its timestamps."""
    granularity = 2_000_000_000 if st.st_ctime_ns % 1_000_000_000 == 0 else 100_000_000
    return max(st.st_mtime_ns, st.st_ctime_ns) >= started_ns - granularity


class StatCache:
    """relative path -> [size, mtime_ns, ctime_ns, inode, device, hash] of files hashed before."""

    def __init__(self, path: Path, rehash: bool) -> None:
        self.path = path
        self.entries: dict[str, list[Any]] = {} if rehash else self._read(path)
        self.dirty = rehash

    @staticmethod
    def _read(path: Path) -> dict[str, list[Any]]:
        try:
            data = json.loads(path.read_bytes())
            if data["algorithm"] == ALGORITHM and data["format"] == FORMAT:
                return dict(data["files"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a missing or damaged cache only costs re-reading
        return {}

    def lookup(self, item: ScanItem) -> str | None:
        found = self.entries.get(item.rel)
        return str(found[5]) if found is not None and found[:5] == stat_key(item.st) else None

    def remember(self, rel: str, st: os.stat_result, digest: str, started_ns: int) -> None:
        self.dirty = True
        if _racy(st, started_ns):
            self.entries.pop(rel, None)
        else:
            self.entries[rel] = [*stat_key(st), digest]

    def prune(self, roots: Sequence[str], seen: set[str]) -> None:
        for rel in [r for r in self.entries if r not in seen and within(r, roots)]:
            del self.entries[rel]
            self.dirty = True

    def save(self) -> None:
        if self.dirty:  # a hint, not a record: no fsync
            atomic_write_json(self.path, {"format": FORMAT, "algorithm": ALGORITHM, "files": self.entries},
                              fsync=False, separators=(",", ":"))


# --- storing -------------------------------------------------------------------------------------------


class Txn:
    """The objects one creation adds: temporaries until ``commit``, removed again by ``rollback``."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.objects, self.tmp, self.packs_dir = str(ws.objects_dir), str(ws.tmp_dir), str(ws.packs_dir)
        self.prefix = f"{os.getpid()}-{os.urandom(4).hex()}-"
        self._names = itertools.count()
        self._lock = threading.Lock()
        self.pending: dict[str, str] = {}  # new contents of their own: digest -> temporary
        self.packing: set[str] = set()  # new small contents, in the writer's packs
        self.writer = PackWriter(self.tmp, self.prefix, lambda fd, data: _write(fd, data))  # the seam, late
        self.packed = Stored(ws).packed
        self._listings: dict[str, frozenset[str]] = {}
        self.added: list[str] = []  # paths named in the store, for rollback
        self.objects_added = self.bytes_added = 0

    def known(self, digest: str) -> bool:
        """Whether the store has (or this creation is adding) that content."""
        if digest in self.pending or digest in self.packing or digest in self.packed:
            return True
        listing = self._listings.get(digest[:2])
        if listing is None:  # one listdir per fan-out directory instead of a stat per file
            try:
                listing = frozenset(os.listdir(f"{self.objects}/{digest[:2]}"))
            except FileNotFoundError:
                listing = frozenset()
            self._listings[digest[:2]] = listing  # only we add objects (we hold the lock), via pending
        return digest in listing

    def new_tmp(self) -> str:
        return f"{self.tmp}/{self.prefix}{next(self._names)}"

    def offer(self, digest: str, tmp: str | None, size: int) -> None:
        if tmp is None:
            return
        with self._lock:
            if self.known(digest):  # another file with the same content got there first
                os.unlink(tmp)
                return
            self.pending[digest] = tmp
            self.objects_added += 1
            self.bytes_added += size

    def offer_small(self, digest: str, data: memoryview) -> None:
        """Pack the small content ``data`` unless the store has it."""
        with self._lock:
            if not self.known(digest):
                self.writer.add(digest, data)
                self.packing.add(digest)
                self.objects_added += 1
                self.bytes_added += len(data)

    def commit(self) -> None:
        self.writer.close()
        if not self.pending and not self.packing:
            return
        sync_filesystem(self.tmp)  # contents durable before any of them gets its name
        self.writer.install(self.packs_dir, self.added)
        made: set[str] = set()
        for digest, tmp in self.pending.items():
            dst = object_path(self.objects, digest)
            if digest[:2] not in made:
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                made.add(digest[:2])
            os.rename(tmp, dst)
            self.added.append(dst)
        self.pending.clear()
        sync_filesystem(self.objects)  # and the names, before a manifest refers to them

    def rollback(self) -> None:
        self.writer.close()
        for path in reversed(self.added):  # an index before its pack
            with contextlib.suppress(OSError):
                os.unlink(path)
        clean_tmp(self.ws, self.prefix)


def clean_tmp(ws: Workspace, prefix: str = "") -> None:
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(ws.tmp_dir):
            if name.startswith(prefix):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(ws.tmp_dir, name))


def _chunks(fd: int, view: memoryview, size: int) -> Iterator[memoryview]:
    """The open file's content, in chunks read into ``view`` (each valid until the next is asked for).

    The first read asks for ``size`` + 1 bytes, so that a file of the expected size is read, end of file
    included, in one call: a short read of a regular file is its end. (Were it not, the size check that
    follows every read would catch it.)
    """
    want = min(size + 1, len(view))
    while True:
        n = _readv(fd, [view[:want]])
        if n:
            yield view[:n]
        if n < want:
            return
        want = len(view)


def _write_all(fd: int, data: memoryview) -> None:
    write_all(fd, data, _write)


def _open_new(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)


Read = tuple[str, "str | memoryview | None", int]  # digest; temporary, small content or nothing to store; size


def _hash_into_store(fd: int, size: int, txn: Txn, view: memoryview) -> Read:
    """Hash the open file, copying it to a temporary if its content is new and not small."""
    chunks = _chunks(fd, view, size)
    first = next(chunks, view[:0])
    h = hashlib.sha256(first)
    if len(first) < min(size + 1, len(view)):  # read whole
        if txn.known(h.hexdigest()):
            return h.hexdigest(), None, len(first)  # the store has it: nothing to write
        if len(first) < PACK_BELOW:
            return h.hexdigest(), first, len(first)  # to be packed once the read is known to be stable
    tmp = txn.new_tmp()
    out = _open_new(tmp)
    total = len(first)
    try:
        _write_all(out, first)
        for chunk in chunks:
            h.update(chunk)
            _write_all(out, chunk)
            total += len(chunk)
    except BaseException:
        os.close(out)
        os.unlink(tmp)
        raise
    os.close(out)
    return h.hexdigest(), tmp, total


def _read_once(path: str, rel: str, txn: Txn, view: memoryview) -> tuple[str | None, os.stat_result, int]:
    """(digest, stat before, wall time) of one read; digest None if the file changed during it."""
    started = time.time_ns()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise SnapshotError(f"{rel} stopped being a regular file while being snapshotted", path=rel)
        digest, new, size = _hash_into_store(fd, before.st_size, txn, view)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    key = stat_key(before)
    if size != before.st_size or stat_key(after) != key or stat_key(os.lstat(path)) != key:
        if isinstance(new, str):
            os.unlink(new)
        return None, before, started
    if isinstance(new, memoryview):
        txn.offer_small(digest, new)
    else:
        txn.offer(digest, new, size)
    return digest, before, started


Hashed = tuple[ScanItem, str, os.stat_result, int]
_T = TypeVar("_T")


def _store_batch(root: str, batch: list[ScanItem], txn: Txn) -> tuple[list[Hashed], list[str]]:
    view = memoryview(bytearray(_BUF))
    stored: list[Hashed] = []
    unstable: list[str] = []
    for item in batch:
        path = os.path.join(root, item.rel)
        for attempt in range(_RETRIES):
            try:
                digest, before, started = _read_once(path, item.rel, txn, view)
            except OSError as exc:
                what = "disappeared" if isinstance(exc, FileNotFoundError) and exc.filename == path else (
                    f"could not be stored: {exc.strerror or exc}")
                raise SnapshotError(f"{item.rel} {what}", path=item.rel) from exc
            if digest is not None:
                stored.append((item, digest, before, started))
                break
            time.sleep(0.02 * (attempt + 1))
        else:
            unstable.append(item.rel)
    return stored, unstable


def _batches(items: Sequence[_T], size_of: Callable[[_T], int]) -> list[list[_T]]:
    batches: list[list[_T]] = [[]]
    size = 0
    for item in items:
        if len(batches[-1]) >= _BATCH_FILES or size >= _BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += size_of(item)
    return batches if batches[0] else []


def _workers(items: Sequence[_T], size_of: Callable[[_T], int]) -> int:
    return _WORKERS if items and sum(map(size_of, items)) / len(items) >= _SMALL_FILES else 1


def _run_batches(work: Callable[[Any], tuple[list[Any], list[Any]]], batches: Sequence[Sequence[Any]],
                 sizes: Callable[[Any], int], phase: str, progress: ProgressFn | None, workers: int,
                 ) -> tuple[list[Any], list[Any]]:
    """Run ``work`` on each batch on ``workers`` threads, reporting progress; concatenates the results."""
    done: list[Any] = []
    bad: list[Any] = []
    total, total_bytes = sum(map(len, batches)), sum(sizes(x) for b in batches for x in b)
    count = nbytes = 0
    with ThreadPoolExecutor(min(workers, max(1, len(batches))), "stagekit-snapshot") as pool:
        futures = {pool.submit(work, b): b for b in batches}
        try:
            for fut in as_completed(futures):
                got, failed = fut.result()
                done += got
                bad += failed
                count += len(futures[fut])
                nbytes += sum(sizes(x) for x in futures[fut])
                if progress is not None:
                    progress(Progress(phase, count, total, nbytes, total_bytes))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return done, bad


def store_files(root: str, items: list[ScanItem], txn: Txn, progress: ProgressFn | None) -> list[Hashed]:
    """Hash the files ``items`` (under ``root``), adding new contents to ``txn``: (item, digest, stat, time).

    The stat is the one taken before the read that hashed it, and the time when that read started.
    """
    def size_of(item: ScanItem) -> int:
        return item.st.st_size

    stored, unstable = _run_batches(lambda b: _store_batch(root, b, txn), _batches(items, size_of),
                                    size_of, "reading", progress, _workers(items, size_of))
    if unstable:
        raise SnapshotError(f"{len(unstable)} file(s) kept changing while being read ({_RETRIES} tries): "
                            + ", ".join(sorted(unstable)) + "; stop what writes them and try again",
                            path=unstable[0], problems=[f"{r}: changed while being read" for r in unstable])
    return stored


# --- hashing what is stored ----------------------------------------------------------------------------


def _hash_path(path: str, view: memoryview) -> tuple[str, int] | None:
    """(sha256, size) of the regular file at ``path``; None if missing; ("", size) if not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink where a file should be
            return "", 0
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "", st.st_size
        h = hashlib.sha256()
        total = 0
        for chunk in _chunks(fd, view, st.st_size):
            h.update(chunk)
            total += len(chunk)
        return h.hexdigest(), total
    finally:
        os.close(fd)


def hash_many(paths: list[tuple[str, int]], phase: str, progress: ProgressFn | None,
              ) -> dict[str, tuple[str, int] | None]:
    """Hash (path, expected size) pairs in parallel: path -> _hash_path(path)."""
    def work(batch: list[tuple[str, int]]) -> tuple[list[Any], list[Any]]:
        view = memoryview(bytearray(_BUF))
        return [(p, _hash_path(p, view)) for p, _ in batch], []

    def size_of(job: tuple[str, int]) -> int:
        return job[1]

    done, _ = _run_batches(work, _batches(paths, size_of), size_of, phase, progress, _workers(paths, size_of))
    return dict(done)


def check_stored(stored: Stored, contents: dict[str, int], progress: ProgressFn | None,
                 ) -> dict[str, tuple[str, int] | None]:
    """The stored contents (digest -> expected size) that the store no longer holds intact: digest -> (sha256,
    size) of what it holds instead, ("", size) if that is not a regular file, None if it holds nothing.

    Packed contents are read a run of neighbours (up to 1 MiB) at a time, contents of their own on threads.
    """
    total, total_bytes = len(contents), sum(contents.values())
    files = nbytes = 0
    view = memoryview(bytearray(WINDOW))
    differ: dict[str, tuple[str, int] | None] = {}
    packed: set[str] = set()
    for run in stored.packs.runs(contents):
        differ.update(check_run(run, view))
        packed.update(run.digests)
        if [contents[d] for d in run.digests] != run.sizes:  # intact, but not the size the manifest says
            differ.update({d: (d, size) for d, size in zip(run.digests, run.sizes, strict=True)
                           if size != contents[d] and d not in differ})
        files, nbytes = files + len(run.digests), nbytes + sum(run.sizes)
        if progress is not None:
            progress(Progress("verifying", files, total, nbytes, total_bytes))

    def loose_done(p: Progress) -> None:
        if progress is not None:
            progress(Progress("verifying", files + p.done, total, nbytes + p.done_bytes, total_bytes))

    loose = {stored.path(d): (d, size) for d, size in contents.items() if d not in packed}
    hashed = hash_many([(path, size) for path, (_, size) in loose.items()], "verifying", loose_done)
    for path, expected in loose.items():
        if (got := hashed[path]) != expected:
            differ[expected[0]] = got
    return differ


# --- collecting garbage --------------------------------------------------------------------------------


def remove_unreferenced(ws: Workspace, keep: set[str]) -> tuple[int, int]:
    """Remove every stored object whose digest is not in ``keep``, and leftover temporaries.

    Returns (objects removed, bytes freed).
    """
    with ws.lock("gc", wait=None):  # readers (verify, restore, checkout) hold it shared
        removed, freed = collect(str(ws.packs_dir), keep, str(ws.tmp_dir), sync_filesystem)
        for sub in os.scandir(ws.objects_dir):
            if not sub.is_dir(follow_symlinks=False):
                continue
            for obj in os.scandir(sub.path):
                if obj.name not in keep:
                    freed += obj.stat(follow_symlinks=False).st_size
                    os.unlink(obj.path)
                    removed += 1
        clean_tmp(ws)
    return removed, freed
