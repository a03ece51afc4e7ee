"""Snapshot operations that write: create, restore, checkout, delete and gc.

A snapshot is a manifest (``stagekit.snapshots.manifest``) naming contents in the object store
(``stagekit.snapshots.store``); nothing in it points at the live tree, so rewriting, truncating or deleting a
source file cannot change it, and ``verify`` re-hashes what is stored to prove it. Every function takes the
workspace ``Layout``; the ``Workspace`` class is the public front door to them.

* ``create`` holds the write lock, stores the files the stat cache cannot vouch for, commits the store, and
  writes the manifest last (temporary file, fsync, rename). Any failure removes what it added.
* ``verify``, ``restore`` and ``checkout`` hold the gc lock shared, so a deletion cannot remove a content
  while they read it.
* ``delete`` and ``gc`` hold the write lock and remove the contents no other manifest names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stagekit.atomic import atomic_write_json, atomic_write_text, copy_file, fsync_dir, sync_filesystem
from stagekit.errors import SnapshotError, SnapshotExistsError, SnapshotNotFoundError
from stagekit.snapshots import manifest
from stagekit.snapshots.layout import Layout, ScanItem, stat_key, walk
from stagekit.snapshots.manifest import Entry, Snapshot
from stagekit.snapshots.statcache import StatCache
from stagekit.snapshots.store import Progress, ProgressFn, Store, Txn, clean_tmp
from stagekit.snapshots.verify import check_intact, require_objects


@dataclass(frozen=True)
class CreateResult:
    snapshot: Snapshot
    files_read: int  # files hashed; the others were unchanged since last hashed (stat cache)
    bytes_read: int
    objects_added: int  # new contents stored; the others were in the store already
    bytes_added: int


@dataclass(frozen=True)
class RestoreResult:
    name: str
    path: Path
    files: int
    size: int
    method: str  # "reflink", "copy", "reflink+copy" or "hardlink"


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
                raise SnapshotError(f"could not create snapshot {name!r}: {exc.strerror or exc}; nothing "
                                    "was kept", snapshot=name) from exc
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


def restore(layout: Layout, name: str, to: str | os.PathLike[str], *, hardlink: bool = False,
            verify: bool = True, progress: ProgressFn | None = None) -> RestoreResult:
    """Write snapshot ``name`` into directory ``to``, which must not exist or be empty.

    Files are reflinked where the filesystem can, else copied: independent of the store. With ``hardlink``
    every file is a hard link to its stored object instead: fast, but a program that rewrites such a file in
    place (pandas ``to_parquet`` does) changes the stored object too, which ``verify`` then reports.
    The tree is built beside ``to``, checked against the manifest (unless ``verify=False``) and renamed into
    place, so ``to`` never holds half a restore.
    """
    snap = manifest.load(layout, name)
    dest = Path(os.path.abspath(to))
    real = Path(os.path.realpath(dest.parent)) / dest.name
    if real == layout.state_dir or layout.state_dir in real.parents:
        raise SnapshotError(f"cannot restore into stagekit's own state: {str(dest)!r}", path=str(dest))
    if os.path.lexists(dest) and (dest.is_symlink() or not dest.is_dir() or any(dest.iterdir())):
        raise SnapshotError(f"cannot restore snapshot {name!r} to {str(dest)!r}: it exists and is not an "
                            "empty directory", snapshot=name, path=str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.restoring-{os.urandom(4).hex()}"
    with layout.lock("gc", shared=True, wait=None):
        store = Store(layout)
        require_objects(store, snap)
        try:
            method = _materialize(store, snap, tmp, hardlink, progress)
            if verify:
                check_intact(tmp, snap, check_mode=not hardlink)
            sync_filesystem(tmp)
            os.replace(tmp, dest)  # an empty directory is replaced atomically
            fsync_dir(dest.parent)
        except BaseException as exc:
            _remove_tree(tmp)
            if isinstance(exc, OSError):
                raise SnapshotError(f"could not restore snapshot {name!r} to {str(dest)!r}: "
                                    f"{exc.strerror or exc}", snapshot=name, path=str(dest)) from exc
            raise
    return RestoreResult(name, dest, snap.file_count, snap.total_size, method)


def _materialize(store: Store, snap: Snapshot, root: Path, hardlink: bool, progress: ProgressFn | None) -> str:
    """Write the snapshot's tree into the new directory ``root``; returns how its files were made."""
    os.mkdir(root)
    made, methods = {""}, set[str]()
    done = done_bytes = 0
    for e in snap.entries:
        path = os.path.join(root, e.path)
        if (parent := os.path.dirname(e.path)) not in made:
            os.makedirs(os.path.join(root, parent), exist_ok=True)
            made.add(parent)
        if e.kind == "dir":
            os.makedirs(path, exist_ok=True)
            os.chmod(path, e.mode)
        elif e.kind == "symlink":
            os.symlink(e.target, path)
        elif hardlink:
            os.link(store.path(e.hash), path)
        else:
            methods.add(copy_file(store.path(e.hash), path, permissions=e.mode))
        if e.kind == "file" and progress is not None:
            done, done_bytes = done + 1, done_bytes + e.size
            progress(Progress("restoring", done, snap.file_count, done_bytes, snap.total_size))
    return "hardlink" if hardlink else "+".join(sorted(methods)) or "copy"


def _remove_tree(path: Path) -> None:
    """Remove a tree that may contain read-only directories."""
    if path.is_dir() and not path.is_symlink():
        for dirpath, _, _ in os.walk(path):
            os.chmod(dirpath, 0o755)
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _tree_stamp(root: Path) -> dict[str, list[int]]:
    return {rel: [st.st_mode, *stat_key(st)[:4]] for rel, st, _ in walk(root, ["."]) if rel != "."}


def checkout(layout: Layout, name: str) -> Path:
    """A read-only directory holding snapshot ``name``'s files at their workspace-relative paths.

    Built once under ``.stagekit/checkouts/<name>`` (copies, so a stage that writes into its inputs cannot
    reach the store) and verified against the manifest then; later calls only compare every entry's stat
    with the one recorded at build time, and rebuild on any difference (a file rewritten, added, removed).
    """
    snap = manifest.load(layout, name)
    digest = hashlib.sha256(manifest.file_of(layout, name).read_bytes()).hexdigest()
    dest, stamp_path = layout.checkouts_dir / name, layout.checkouts_dir / f"{name}.stamp.json"
    with layout.lock(f"checkout-{name}", wait=None), layout.lock("gc", shared=True, wait=None):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            stamp = json.loads(stamp_path.read_bytes())
            if stamp["manifest"] == digest and dest.is_dir() and stamp["tree"] == _tree_stamp(dest):
                return dest
        _drop_checkout(layout, name)
        store = Store(layout)
        require_objects(store, snap)
        tmp = layout.checkouts_dir / f".tmp~{name}~{os.urandom(4).hex()}"
        try:
            _materialize(store, snap, tmp, hardlink=False, progress=None)
            check_intact(tmp, snap, check_mode=True)
            for rel, st, _ in reversed(list(walk(tmp, ["."]))):  # deepest first; the top stays writable
                if rel != "." and not stat.S_ISLNK(st.st_mode):
                    os.chmod(tmp / rel, stat.S_IMODE(st.st_mode) & ~0o222)
            os.rename(tmp, dest)
            atomic_write_json(stamp_path, {"manifest": digest, "tree": _tree_stamp(dest)})
        except BaseException:
            _remove_tree(tmp)
            raise
    return dest


def _drop_checkout(layout: Layout, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(layout.checkouts_dir / f"{name}.stamp.json")
    for leftover in (layout.checkouts_dir / name, *layout.checkouts_dir.glob(f".tmp~{name}~*")):
        _remove_tree(leftover)


# --- deleting ------------------------------------------------------------------------------------------


def delete(layout: Layout, name: str, *, wait: float = 0.0) -> DeleteResult:
    """Delete snapshot ``name``, its checkout, and every stored object no other snapshot refers to."""
    target = manifest.file_of(layout, name)
    with layout.lock("write", wait=wait, purpose=f"deleting snapshot {name!r}"):
        if not target.exists():
            raise SnapshotNotFoundError(f"no snapshot named {name!r} in workspace {str(layout.root)!r}",
                                        snapshot=name)
        keep = _referenced(layout, but=name)  # another manifest is damaged: fail before removing anything
        with layout.lock(f"checkout-{name}", wait=None):
            _drop_checkout(layout, name)
        os.unlink(target)
        fsync_dir(layout.snapshots_dir)
        removed, freed = Store(layout).remove_unreferenced(keep)
    return DeleteResult(name, removed, freed)


def gc(layout: Layout, *, wait: float = 0.0) -> tuple[int, int]:
    """Remove stored objects no snapshot refers to, and leftovers of crashed creations.

    Returns (objects removed, bytes freed).
    """
    with layout.lock("write", wait=wait, purpose="collecting garbage"):
        return Store(layout).remove_unreferenced(_referenced(layout))


def _referenced(layout: Layout, but: str | None = None) -> set[str]:
    return {e.hash for snap in manifest.load_all(layout, but) for e in snap.files}
