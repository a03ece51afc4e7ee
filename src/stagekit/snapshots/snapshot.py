"""Snapshot operations that write the store: create, delete and gc (restore and checkout: ``restore.py``).

A snapshot is a manifest (``stagekit.snapshots.manifest``) naming contents in the object store
(``stagekit.snapshots.store``); nothing in it points at the live tree, so rewriting, truncating or deleting a
source file cannot change it, and ``verify`` re-hashes what is stored to prove it. Every function takes the
workspace ``Layout``; the ``Workspace`` class is the public front door to them.

* ``create`` holds the write lock, stores the files the stat cache cannot vouch for, commits the store, and
  writes the manifest last (temporary file, fsync, rename). Any failure removes what it added.
* ``verify``, ``restore`` and ``checkout`` hold the gc lock shared, so a deletion cannot remove a content
  while they read it.
* ``delete`` and ``gc`` hold the write lock and remove the contents no other manifest names. The object store
  is shared (the run store keeps produced artifacts there): what else must stay comes from the caller's
  ``keep`` (``OtherReferences``), asked under the lock, so that this module knows nothing of runs.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime

from stagekit.atomic import atomic_write_text, fsync_dir
from stagekit.errors import SnapshotError, SnapshotExistsError, SnapshotNotFoundError
from stagekit.snapshots import manifest
from stagekit.snapshots.layout import Layout, ScanItem, why
from stagekit.snapshots.manifest import Entry, Snapshot
from stagekit.snapshots.restore import drop_checkout, filename_of
from stagekit.snapshots.statcache import StatCache
from stagekit.snapshots.store import Collected, ProgressFn, Store, Txn, clean_tmp


@dataclass(frozen=True)
class CreateResult:
    snapshot: Snapshot
    files_read: int  # files hashed; the others were unchanged since last hashed (stat cache)
    bytes_read: int
    objects_added: int  # new contents stored; the others were in the store already
    bytes_added: int


OtherReferences = Callable[[], tuple[AbstractSet[str], float | None]]
"""What users of the object store other than snapshots hold, asked by ``delete`` and ``gc`` while they hold the
write lock and before they remove anything: the digests they refer to, and a time (Unix seconds; None: none)
from which an object whose mtime is that or later is spared, for a writer that does not take the write lock
may be about to name it. An error it raises stops the deletion or gc before anything is removed."""


@dataclass(frozen=True)
class DeleteResult:
    name: str
    objects_removed: int
    bytes_freed: int


# --- creating ------------------------------------------------------------------------------------------


def create(layout: Layout, name: str, paths: Iterable[str | os.PathLike[str]], *, wait: float = 0.0,
           rehash: bool = False, progress: ProgressFn | None = None) -> CreateResult:
    """Snapshot ``paths`` (relative to the workspace root, or absolute inside it) as ``name``.

    ``wait``: seconds to wait for another creation or deletion to finish (default: fail at once).
    ``rehash``: ignore the stat cache and re-read every file.
    """
    target = manifest.file_of(layout, name)
    roots = layout.roots(paths)
    with layout.lock("write", wait=wait, purpose=f"creating snapshot {name!r}"):
        if target.exists():
            raise SnapshotExistsError(f"a snapshot named {name!r} already exists (snapshots never change; "
                                      "delete it first or choose another name)", snapshot=name)
        clean_tmp(layout)  # leftovers of a crashed creation: we hold the lock, nobody else writes there
        items = layout.scan(roots)
        cache, txn = StatCache(layout, rehash), Txn(layout)
        try:
            entries, read = _entries(str(layout.root), items, cache, txn, progress)
            txn.commit()
            snap = Snapshot(name, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), tuple(roots), entries)
            atomic_write_text(target, manifest.dumps(snap))
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)  # written but perhaps not durable: it must not outlive its objects
            txn.rollback()
            if isinstance(exc, OSError):
                raise SnapshotError(f"could not create snapshot {name!r}: {why(exc)}; nothing "
                                    "was kept", snapshot=name) from exc
            if type(exc) is SnapshotError and exc.snapshot is None:  # a file's failure: say whose
                raise SnapshotError(f"could not create snapshot {name!r}: {exc}; nothing was kept",
                                    snapshot=name, path=exc.path, problems=exc.problems) from exc
            raise
        with contextlib.suppress(OSError):
            cache.save(roots, {it.rel for it in items})
    return CreateResult(snap, len(read), sum(it.st.st_size for it in read), txn.objects_added, txn.bytes_added)


def _entries(root: str, items: list[ScanItem], cache: StatCache, txn: Txn, progress: ProgressFn | None,
             ) -> tuple[tuple[Entry, ...], list[ScanItem]]:
    """The manifest entries of ``items``, and the files read for them: those the stat cache cannot vouch for."""
    entries: dict[str, Entry] = {}
    todo: list[ScanItem] = []
    for it in items:
        if it.kind == "dir":
            entries[it.rel] = Entry(it.rel, "dir", stat.S_IMODE(it.st.st_mode))
        elif it.kind == "symlink":
            entries[it.rel] = Entry(it.rel, "symlink", target=it.target)
        elif (digest := cache.lookup(it)) is not None and txn.has(digest):
            entries[it.rel] = Entry(it.rel, "file", stat.S_IMODE(it.st.st_mode), it.st.st_size, digest)
        else:
            todo.append(it)
    for item, digest, st, started in txn.put_files(root, todo, progress):
        entries[item.rel] = Entry(item.rel, "file", stat.S_IMODE(st.st_mode), st.st_size, digest)
        cache.remember(item.rel, st, digest, started)
    return tuple(entries[it.rel] for it in items), todo


# --- restoring, checkouts ------------------------------------------------------------------------------


def delete(layout: Layout, name: str, *, wait: float = 0.0, keep: OtherReferences | None = None,
           ) -> DeleteResult:
    """Delete snapshot ``name``, its checkout, and every stored object no other snapshot refers to (nor
    ``keep``, see ``OtherReferences``).

    Needs no free space. Until its manifest is removed the snapshot is intact, and a failure says so; once
    it is, the snapshot is gone, and a content that cannot be removed is named in the error (``gc`` removes
    it later).
    """
    target = manifest.file_of(layout, name)
    with layout.lock("write", wait=wait, purpose=f"deleting snapshot {name!r}"):
        if not target.exists():
            raise SnapshotNotFoundError(f"no snapshot named {name!r} in workspace {str(layout.root)!r}",
                                        snapshot=name)
        referenced = _referenced(layout, but=name)  # a damaged manifest: fail before removing anything
        others, spare_since = _others(keep)  # likewise if the other users cannot say what they hold
        intact = f"; snapshot {name!r} is intact"
        with layout.lock(f"checkout-{name}", wait=None):
            try:
                drop_checkout(layout, name)
            except OSError as exc:
                raise SnapshotError(f"could not delete snapshot {name!r}: cannot remove its checkout: "
                                    f"{why(exc)}{intact}", snapshot=name, path=filename_of(exc)) from exc
        try:
            os.unlink(target)
        except OSError as exc:
            raise SnapshotError(f"could not delete snapshot {name!r}: cannot remove its manifest: {why(exc)}"
                                f"{intact}", snapshot=name, path=str(target)) from exc
        try:
            fsync_dir(layout.snapshots_dir)
        except OSError as exc:  # the removal might not survive a crash: its contents must
            raise SnapshotError(f"deleted snapshot {name!r}, but the deletion could not be flushed to disk "
                                f"({why(exc)}); its stored contents were kept (`stagekit snapshot gc` removes "
                                "them)", snapshot=name, path=str(layout.snapshots_dir)) from exc
        got = Store(layout).remove_unreferenced(referenced | others, spare_since=spare_since)
        _check_collected(got, f"deleted snapshot {name!r}, but", name)
    return DeleteResult(name, got.removed, got.freed)


def gc(layout: Layout, *, wait: float = 0.0, keep: OtherReferences | None = None) -> tuple[int, int]:
    """Remove stored objects no snapshot refers to (nor ``keep``, see ``OtherReferences``), and leftovers of
    crashed creations.

    Returns (objects removed, bytes freed). Needs no free space.
    """
    with layout.lock("write", wait=wait, purpose="collecting garbage"):
        referenced = _referenced(layout)
        others, spare_since = _others(keep)
        got = Store(layout).remove_unreferenced(referenced | others, spare_since=spare_since)
        _check_collected(got, "gc could not finish:", None)
    return got.removed, got.freed


def _check_collected(got: Collected, prefix: str, name: str | None) -> None:
    if got.failed:
        path, reason = got.failed[0]
        raise SnapshotError(f"{prefix} {len(got.failed)} stored content(s) no snapshot uses could not be "
                            f"removed ({got.removed} were, {got.freed} bytes freed): {path}: {reason}"
                            + (" ..." if len(got.failed) > 1 else "") + "; `stagekit snapshot gc` removes them "
                            "once that is fixed", snapshot=name, path=path,
                            problems=[f"{p}: {r}" for p, r in got.failed])


def _others(keep: OtherReferences | None) -> tuple[AbstractSet[str], float | None]:
    return (frozenset(), None) if keep is None else keep()


def _referenced(layout: Layout, but: str | None = None) -> set[str]:
    return {e.hash for snap in manifest.load_all(layout, but) for e in snap.files}
