"""The object store: every file content once, read-only, at ``.stagekit/objects/<hh>/<sha256>``.

It knows nothing of manifests. ``Txn`` adds the contents of workspace files: each file is read with a stat
before and after (and its path re-checked for a replaced file), and read again if it changed, up to
``RETRIES`` times; new contents go to ``.stagekit/tmp``, are made durable with one ``syncfs`` and only then
renamed into the store, so a name in the store always holds a whole content. ``hash_files`` re-hashes
files (stored objects, or a tree being compared) on a thread pool: ``hashlib`` and file I/O release the GIL.
``remove_unreferenced`` is the garbage collection: it removes what the caller does not name, except what
was touched since the time the caller gives (the run store shares these objects).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TypeVar

from stagekit.atomic import sync_filesystem
from stagekit.errors import SnapshotError
from stagekit.snapshots.layout import Layout, ScanItem, stat_key, why

RETRIES = 3  # reads of a file that changes while it is read
_BUF = 1 << 20  # read size: a file up to this size is read in one call, hashed, and written only if new
_BATCH_FILES, _BATCH_BYTES = 256, 32 << 20  # work per thread-pool task
WORKERS = min(4, os.cpu_count() or 1)
# Hashing files smaller than this on average is mostly Python work per file, on which threads contend for
# the GIL: one thread verified 10,000 files of 4 KiB faster than two (measured on 2 CPUs).
_SMALL_FILES = 256 << 10

_T = TypeVar("_T")
_R = TypeVar("_R")
Hashed = tuple[str, int] | None  # (sha256, size) of what a path holds; None: nothing; ("", size): not a file
Stored = tuple[ScanItem, str, os.stat_result, int]  # item, sha256, stat before its read, when the read began


@dataclass(frozen=True)
class Progress:
    """Reported while hashing or copying: ``phase`` is "reading", "verifying" or "restoring"."""

    phase: str
    done: int
    total: int
    done_bytes: int
    total_bytes: int


ProgressFn = Callable[[Progress], None]


def in_threads(work: Callable[[list[_T]], list[_R]], items: Sequence[_T], size_of: Callable[[_T], int],
               phase: str, progress: ProgressFn | None, workers: int = WORKERS) -> list[_R]:
    """``work`` over batches of ``items`` on ``workers`` threads, reporting progress as batches finish."""
    batches: list[list[_T]] = []
    size = _BATCH_BYTES
    for item in items:
        if size >= _BATCH_BYTES or len(batches[-1]) >= _BATCH_FILES:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += size_of(item)
    total, total_bytes = len(items), sum(map(size_of, items))
    results: list[_R] = []
    done = done_bytes = 0
    with ThreadPoolExecutor(max(1, min(workers, len(batches))), "stagekit-snapshot") as pool:
        futures = {pool.submit(work, b): b for b in batches}
        try:
            for fut in as_completed(futures):
                results += fut.result()
                done, done_bytes = done + len(futures[fut]), done_bytes + sum(map(size_of, futures[fut]))
                if progress is not None:
                    progress(Progress(phase, done, total, done_bytes, total_bytes))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # nothing runs on once the caller cleans up
            raise
    return results


def hash_file(path: str, size: int, buf: memoryview) -> Hashed:
    """(sha256, size) of the file at ``path``, expected to be ``size`` bytes.

    None if there is nothing at ``path``; ("", size) if it is not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink where a file should be
            return "", 0
        raise
    try:
        if size < len(buf):  # the common case, in one read: a short read of a regular file is its end
            n = os.readv(fd, [buf[:size + 1]])
            if n <= size:
                return hashlib.sha256(buf[:n]).hexdigest(), n
            os.lseek(fd, 0, os.SEEK_SET)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "", st.st_size
        h, total = hashlib.sha256(), 0
        while n := os.readv(fd, [buf]):
            h.update(buf[:n])
            total += n
        return h.hexdigest(), total
    except (IsADirectoryError, BlockingIOError):  # a directory or FIFO where a file should be
        return "", 0
    finally:
        os.close(fd)


def hash_files(jobs: Sequence[tuple[str, int]], phase: str, progress: ProgressFn | None) -> dict[str, Hashed]:
    """``hash_file`` of each (path, expected size), on threads: path -> what it holds."""
    def work(batch: list[tuple[str, int]]) -> list[tuple[str, Hashed]]:
        buf = memoryview(bytearray(_BUF))
        done = []
        for path, size in batch:
            try:
                done.append((path, hash_file(path, size, buf)))
            except OSError as exc:  # a read error (EIO, EACCES): say which file, which a read does not
                raise OSError(exc.errno, exc.strerror or str(exc), path) from exc
        return done

    small = sum(size for _, size in jobs) < _SMALL_FILES * len(jobs)
    return dict(in_threads(work, jobs, lambda job: job[1], phase, progress, 1 if small else WORKERS))


class Store:
    """The objects of a workspace: where each is, whether it is there, and removing those no one uses."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.objects = str(layout.objects_dir)
        self._listings: dict[str, frozenset[str]] = {}

    def path(self, digest: str) -> str:
        return f"{self.objects}/{digest[:2]}/{digest}"

    def has(self, digest: str) -> bool:
        """Whether the store holds ``digest`` (one listdir per fan-out directory, not a stat per object)."""
        listing = self._listings.get(digest[:2])
        if listing is None:
            try:
                listing = frozenset(os.listdir(f"{self.objects}/{digest[:2]}"))
            except FileNotFoundError:
                listing = frozenset()
            self._listings[digest[:2]] = listing
        return digest in listing

    def missing(self, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` the store does not hold."""
        return {d for d in set(digests) if not self.has(d)}

    def remove_unreferenced(self, keep: AbstractSet[str], *, spare_since: float | None = None) -> Collected:
        """Remove every object not in ``keep``, and leftover temporaries.

        ``spare_since``: an object whose mtime is at or after this time (Unix seconds) is kept too, and
        counted in the result's ``spared``: another user of the store (a run) that writes objects, or
        refreshes the time of one it reuses, without taking the write lock may be about to name it.

        Needs no free space. An object that cannot be removed is skipped and listed in the result's
        ``failed``: the others are still removed. The caller holds the write lock (no creation runs); this
        takes the gc lock from readers.
        """
        got = Collected()
        with self.layout.lock("gc", wait=None):
            try:
                subs = sorted(e.path for e in os.scandir(self.objects) if e.is_dir(follow_symlinks=False))
            except FileNotFoundError:
                subs = []
            except OSError as exc:
                got.failed.append((self.objects, why(exc)))
                subs = []
            for sub in subs:
                try:
                    with os.scandir(sub) as objs:
                        names = [obj.name for obj in objs]
                except OSError as exc:
                    got.failed.append((sub, why(exc)))
                    continue
                for name in names:
                    if name not in keep:
                        path = f"{sub}/{name}"
                        try:
                            st = os.lstat(path)
                            if spare_since is not None and st.st_mtime >= spare_since:
                                got.spared += 1
                                continue
                            os.unlink(path)
                        except FileNotFoundError:
                            continue
                        except OSError as exc:
                            got.failed.append((path, exc.strerror or str(exc)))
                            continue
                        got.removed += 1
                        got.freed += st.st_size
            clean_tmp(self.layout)
        self._listings.clear()
        return got


@dataclass
class Collected:
    """What ``remove_unreferenced`` did: objects removed, bytes freed, unreferenced objects spared as recent,
    and (path, why) of what it could not remove."""

    removed: int = 0
    freed: int = 0
    spared: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def clean_tmp(layout: Layout, prefix: str = "") -> None:
    """Remove the temporaries (whose names begin with ``prefix``) of creations, crashed ones included."""
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(layout.tmp_dir):
            if name.startswith(prefix):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(layout.tmp_dir, name))


class Txn(Store):
    """The objects one creation adds: temporaries until ``commit``, all removed by ``rollback``.

    The caller holds the write lock: no one else adds objects or writes to ``.stagekit/tmp``.
    """

    def __init__(self, layout: Layout) -> None:
        super().__init__(layout)
        self.tmp = str(layout.tmp_dir)
        self.prefix = f"{os.getpid()}-{os.urandom(4).hex()}-"
        self._names = itertools.count()
        self._lock = threading.Lock()
        self.pending: dict[str, str] = {}  # new contents: sha256 -> temporary
        self.added: list[str] = []  # named in the store, for rollback
        self.objects_added = self.bytes_added = 0

    def has(self, digest: str) -> bool:
        return digest in self.pending or super().has(digest)

    def put_files(self, root: str, items: Sequence[ScanItem], progress: ProgressFn | None) -> list[Stored]:
        """Read the files ``items`` under ``root`` into the store: (item, sha256, stat, read start) of each."""
        def work(batch: list[ScanItem]) -> list[tuple[ScanItem, tuple[str, os.stat_result, int] | None]]:
            buf = memoryview(bytearray(_BUF))
            return [(item, self._read_stable(root, item.rel, buf)) for item in batch]

        read = in_threads(work, items, lambda item: item.st.st_size, "reading", progress)
        unstable = sorted(item.rel for item, got in read if got is None)
        if unstable:
            raise SnapshotError(f"{len(unstable)} file(s) kept changing while being read ({RETRIES} tries): "
                                + ", ".join(unstable) + "; stop what writes them and try again",
                                path=unstable[0], problems=[f"{r}: changed while being read" for r in unstable])
        return [(item, *got) for item, got in read if got is not None]

    def _read_stable(self, root: str, rel: str, buf: memoryview) -> tuple[str, os.stat_result, int] | None:
        """(sha256, stat before, read start) of a read the file did not change during; None after RETRIES."""
        path = os.path.join(root, rel)
        for attempt in range(RETRIES):
            try:
                got = self._read_once(path, rel, buf)
            except OSError as exc:
                gone = isinstance(exc, FileNotFoundError) and exc.filename == path
                raise SnapshotError(f"{rel} disappeared" if gone else
                                    f"{rel} could not be stored: {why(exc)}", path=rel) from exc
            if got is not None:
                return got
            time.sleep(0.02 * (attempt + 1))
        return None

    def _read_once(self, path: str, rel: str, buf: memoryview) -> tuple[str, os.stat_result, int] | None:
        started = time.time_ns()
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise SnapshotError(f"{rel} stopped being a regular file while being snapshotted", path=rel)
            digest, tmp, size = self._copy_in(fd, before.st_size, buf)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        key = stat_key(before)
        if size != before.st_size or stat_key(after) != key or stat_key(os.lstat(path)) != key:
            if tmp:
                os.unlink(tmp)
            return None
        if tmp:
            self._offer(digest, tmp, size)
        return digest, before, started

    def _copy_in(self, fd: int, size: int, buf: memoryview) -> tuple[str, str, int]:
        """Hash the open file, copying it to a temporary unless it is whole in ``buf`` and stored already:
        (sha256, temporary or "", bytes read)."""
        asked = min(size + 1, len(buf))
        n = os.readv(fd, [buf[:asked]])
        h = hashlib.sha256(buf[:n])
        if n < asked and self.has(h.hexdigest()):
            return h.hexdigest(), "", n
        tmp = f"{self.tmp}/{self.prefix}{next(self._names)}"
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        total = n
        try:
            _write_all(out, buf[:n])
            while n == asked:
                asked = len(buf)
                n = os.readv(fd, [buf])
                h.update(buf[:n])
                _write_all(out, buf[:n])
                total += n
        except BaseException:
            os.close(out)
            os.unlink(tmp)
            raise
        os.close(out)
        return h.hexdigest(), tmp, total

    def _offer(self, digest: str, tmp: str, size: int) -> None:
        with self._lock:
            if self.has(digest):  # another file with the same content got there first
                os.unlink(tmp)
                return
            self.pending[digest] = tmp
            self.objects_added += 1
            self.bytes_added += size

    def commit(self) -> None:
        """Name the new contents in the store, durably; contents first, then names."""
        if not self.pending:
            return
        sync_filesystem(self.tmp)
        made: set[str] = set()
        for digest, tmp in self.pending.items():
            if digest[:2] not in made:
                os.makedirs(f"{self.objects}/{digest[:2]}", exist_ok=True)
                made.add(digest[:2])
            os.rename(tmp, self.path(digest))
            self.added.append(self.path(digest))
        self.pending.clear()
        sync_filesystem(self.objects)

    def rollback(self) -> None:
        for path in self.added:
            with contextlib.suppress(OSError):
                os.unlink(path)
        clean_tmp(self.layout, self.prefix)


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data):]

