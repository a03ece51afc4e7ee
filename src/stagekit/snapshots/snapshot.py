"""Immutable workspace snapshots: a content-addressed object store plus one JSON manifest per snapshot.

* A file's content is stored once, under ``.stagekit/objects/<hh>/<sha256>`` or, below 64 KiB, in a pack
  (``.stagekit/packs``: one read verifies thousands), read-only. A snapshot is a
  manifest listing (path, size, hash, mode) for each file, the target of each symlink and each empty
  directory. Nothing in a snapshot points at the live tree, so rewriting, truncating or deleting a source file
  cannot change it; ``verify`` re-hashes what is stored to prove it.
* sha256: on CPUs with SHA extensions (this machine's included) it hashes about twice as fast as blake2b
  (1.27 GB/s against 0.61 GB/s, measured with hashlib) and it is what every other tool can check.
* Creation is atomic. New objects are written to ``.stagekit/tmp``, made durable with one ``syncfs`` and only
  then renamed into the store, so a name in the store always holds its whole content; the manifest is
  written last (temporary file, fsync, rename). Any failure, a full disk included, removes what this
  creation added; a crash leaves at most unreferenced temporaries, swept by the next creation.
* A re-snapshot does not re-read a file whose size, mtime_ns, ctime_ns, inode and device equal those
  recorded when it was last hashed (``.stagekit/cache/stat.json``). A file modified within the filesystem's
  timestamp granularity of being hashed is not cached (it could change again without its mtime moving).
* A file is read with a stat before and after; if they differ, or the path now names another inode, the read
  is retried, and a file that keeps changing fails the creation, naming the file.

This module is the public API and builds manifests; ``stagekit.snapshots.manifest`` writes and reads them,
``stagekit.snapshots.store`` is the object store and reads files into it, ``stagekit.snapshots.packs`` keeps its small contents,
``stagekit.snapshots.verify`` compares stores and trees with manifests, and ``stagekit.snapshots.types``
holds the data types and errors, which are named here as this module's own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from stagekit.atomic import atomic_write_json, atomic_write_text, fsync_dir, sync_filesystem
from stagekit.snapshots.manifest import dumps as manifest_text
from stagekit.snapshots.manifest import loads as parse_manifest
from stagekit.snapshots.packs import PackReader
from stagekit.snapshots.store import StatCache, Stored, Txn, clean_tmp, remove_unreferenced, stat_key, store_files
from stagekit.snapshots.types import (
    ALGORITHM,
    CreateResult,
    DeleteResult,
    Entry,
    Problem,
    Progress,
    ProgressFn,
    RestoreResult,
    Snapshot,
    SnapshotCorruptError,
    SnapshotError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    VerifyReport,
)
from stagekit.snapshots.types import FORMAT as FORMAT
from stagekit.snapshots.verify import check_intact, compare_tree, require_objects, verify_store
from stagekit.snapshots.workspace import ScanItem, Workspace, check_name, walk

__all__ = [
    "ALGORITHM", "CreateResult", "DeleteResult", "Entry", "Problem", "Progress", "RestoreResult", "Snapshot",
    "SnapshotCorruptError", "SnapshotError", "SnapshotExistsError", "SnapshotNotFoundError", "VerifyReport",
    "checkout", "create", "delete", "gc", "list_snapshots", "load", "restore", "verify",
]

for _cls in (CreateResult, DeleteResult, Entry, Problem, Progress, RestoreResult, Snapshot, SnapshotCorruptError,
             SnapshotError, SnapshotExistsError, SnapshotNotFoundError, VerifyReport):
    _cls.__module__ = __name__  # their public home: reprs, tracebacks and pickles say stagekit.snapshots.snapshot
del _cls

# --- manifests -----------------------------------------------------------------------------------------


def _manifest(ws: Workspace, name: str) -> Path:
    return ws.snapshots_dir / f"{name}.json"


_DAMAGED = (ValueError, KeyError, TypeError, AttributeError)  # what reading a damaged manifest raises


def _damaged(path: Path, exc: Exception) -> SnapshotError:
    return SnapshotError(f"snapshot manifest {str(path)!r} is damaged: {exc}", path=str(path))


def _parse(data: bytes, path: Path) -> Snapshot:
    try:
        return parse_manifest(data)
    except _DAMAGED as exc:
        raise _damaged(path, exc) from exc


def _read_manifest(ws: Workspace, name: str) -> tuple[bytes, Path]:
    """The bytes of snapshot ``name``'s manifest, and its path; ``SnapshotNotFoundError`` if there is none."""
    check_name(name, "snapshot name", SnapshotError)
    path = _manifest(ws, name)
    try:
        return path.read_bytes(), path
    except FileNotFoundError:
        raise SnapshotNotFoundError(f"no snapshot named {name!r} in workspace {str(ws.root)!r}",
                                    snapshot=name) from None


def load(ws: Workspace, name: str) -> Snapshot:
    """The manifest of snapshot ``name``; ``SnapshotNotFoundError`` if there is none."""
    return _parse(*_read_manifest(ws, name))


def list_snapshots(ws: Workspace) -> list[Snapshot]:
    """Every snapshot of the workspace, sorted by name."""
    if not ws.snapshots_dir.is_dir():
        return []
    paths = sorted(p for p in ws.snapshots_dir.glob("*.json") if not p.name.startswith("."))
    return [_parse(p.read_bytes(), p) for p in paths]


# --- creating ------------------------------------------------------------------------------------------


def _file_entry(rel: str, st: os.stat_result, digest: str) -> Entry:
    return Entry(rel, "file", stat.S_IMODE(st.st_mode), st.st_size, digest)


def _entries(ws: Workspace, items: list[ScanItem], cache: StatCache, txn: Txn,
             progress: ProgressFn | None) -> tuple[list[Entry], int, int]:
    """The manifest entries for ``items``, hashing and storing the files the stat cache cannot vouch for."""
    entries: dict[str, Entry] = {}
    todo: list[ScanItem] = []
    for it in items:
        if it.kind == "dir":
            entries[it.rel] = Entry(it.rel, "dir", stat.S_IMODE(it.st.st_mode))
        elif it.kind == "symlink":
            entries[it.rel] = Entry(it.rel, "symlink", target=it.target or "")
        elif (digest := cache.lookup(it)) is not None and txn.known(digest):
            entries[it.rel] = _file_entry(it.rel, it.st, digest)
        else:
            todo.append(it)
    for item, digest, before, started in store_files(str(ws.root), todo, txn, progress):
        entries[item.rel] = _file_entry(item.rel, before, digest)
        cache.remember(item.rel, before, digest, started)
    return [entries[it.rel] for it in items], len(todo), sum(it.st.st_size for it in todo)


def create(ws: Workspace, name: str, paths: Iterable[str | os.PathLike[str]], *, wait: float = 0.0,
           rehash: bool = False, progress: ProgressFn | None = None) -> CreateResult:
    """Snapshot ``paths`` (relative to the workspace root, or absolute inside it) as ``name``.

    ``wait``: seconds to wait for another creation or deletion to finish (default: fail at once).
    ``rehash``: ignore the stat cache and re-read every file.
    """
    check_name(name, "snapshot name", SnapshotError)
    roots = ws.roots(paths)
    ws.ensure_state()
    with ws.lock("write", wait=wait, purpose=f"creating snapshot {name!r}"):
        manifest = _manifest(ws, name)
        if manifest.exists():
            raise SnapshotExistsError(f"a snapshot named {name!r} already exists (snapshots never change; "
                                      "delete it first or choose another name)", snapshot=name)
        clean_tmp(ws)  # leftovers of a crashed creation: we hold the lock, nobody else writes there
        items = ws.scan(roots)
        cache = StatCache(ws.cache_dir / "stat.json", rehash)
        txn = Txn(ws)
        try:
            entries, files_read, bytes_read = _entries(ws, items, cache, txn, progress)
            txn.commit()
            snap = Snapshot(name, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), tuple(roots),
                            tuple(entries))
            atomic_write_text(manifest, manifest_text(snap))
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(manifest)  # written but not made durable: it must not outlive its objects
            txn.rollback()
            if isinstance(exc, OSError):
                raise SnapshotError(f"could not create snapshot {name!r}: {exc.strerror or exc}; nothing "
                                    "was kept", snapshot=name) from exc
            raise
        cache.prune(roots, {it.rel for it in items})
        with contextlib.suppress(OSError):
            cache.save()
    return CreateResult(snap, files_read, bytes_read, txn.objects_added, txn.bytes_added)


# --- verifying -----------------------------------------------------------------------------------------


def verify(ws: Workspace, name: str, *, against: str | os.PathLike[str] | None = None,
           progress: ProgressFn | None = None) -> VerifyReport:
    """Re-hash every stored file of snapshot ``name`` against its manifest.

    With ``against``, compare that directory instead (a restore, or the live workspace root): every changed,
    missing and extra file under the snapshot's paths is listed.
    """
    if against is None:
        data, path = _read_manifest(ws, name)
        with ws.lock("gc", shared=True, wait=None):
            try:
                files, size, problems = verify_store(ws, data, progress)
            except _DAMAGED as exc:
                raise _damaged(path, exc) from exc
        return VerifyReport(name, files, size, tuple(problems))
    snap = load(ws, name)
    problems = compare_tree(Path(against).absolute(), snap, progress, check_mode=True)
    return VerifyReport(name, snap.file_count, snap.total_size, tuple(problems), os.fspath(against))


# --- restoring, checkouts ------------------------------------------------------------------------------


def _materialize(stored: Stored, snap: Snapshot, root: Path, hardlink: bool,
                 progress: ProgressFn | None) -> str:
    """Write the snapshot's tree into the new directory ``root``; returns how files were made."""
    os.mkdir(root)
    made, methods = {"."}, set[str]()
    total, total_bytes, count, nbytes = snap.file_count, snap.total_size, 0, 0
    with PackReader() as packs:
        for e in snap.entries:
            _place(e, os.path.join(root, e.path), stored, packs, hardlink, methods, made)
            if e.kind == "file" and progress is not None:
                count, nbytes = count + 1, nbytes + e.size
                progress(Progress("restoring", count, total, nbytes, total_bytes))
    return "+".join(sorted(methods)) or "copy"


def _place(e: Entry, path: str, stored: Stored, packs: PackReader, hardlink: bool, methods: set[str],
           made: set[str]) -> None:
    """Make the entry ``e`` at ``path``, adding to ``methods`` how a file was made."""
    parent = os.path.dirname(e.path) or "."
    if parent not in made:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        made.add(parent)
    if e.kind == "dir":
        os.makedirs(path, mode=0o755, exist_ok=True)
        os.chmod(path, e.mode)
    elif e.kind == "symlink":
        os.symlink(e.target, path)
    elif hardlink and e.hash not in stored.packed:  # a packed content has no file to link to
        os.link(stored.path(e.hash), path)
        methods.add("hardlink")
    else:
        methods.add(stored.copy_out(e.hash, path, e.mode, packs))


def _remove_tree(path: Path) -> None:
    """Remove a tree that may contain read-only directories."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        for dirpath, _, _ in os.walk(path):
            os.chmod(dirpath, 0o755)
        shutil.rmtree(path)
    else:
        os.unlink(path)


def restore(ws: Workspace, name: str, to: str | os.PathLike[str], *, hardlink: bool = False,
            verify: bool = True, progress: ProgressFn | None = None) -> RestoreResult:
    """Write snapshot ``name`` into directory ``to``, which must not exist or be empty.

    Files are reflinked where the filesystem can, else copied; they are independent of the store. With
    ``hardlink`` they are hard links to the stored objects instead: fast, but a program that rewrites such a
    file in place (pandas ``to_parquet`` does) changes the stored object too; ``verify`` will then fail.
    (Contents under 64 KiB live in packs and are copied even then.)
    The tree is built beside ``to``, checked against the manifest (unless ``verify=False``) and renamed
    into place, so ``to`` never holds half a restore.
    """
    snap = load(ws, name)
    dest = Path(os.path.abspath(to))
    real = Path(os.path.realpath(dest.parent)) / dest.name
    if real == ws.state_dir or ws.state_dir in real.parents:
        raise SnapshotError(f"cannot restore into stagekit's own state: {str(dest)!r}", path=str(dest))
    if os.path.lexists(dest) and (dest.is_symlink() or not dest.is_dir() or any(dest.iterdir())):
        raise SnapshotError(f"cannot restore snapshot {name!r} to {str(dest)!r}: it exists and is not an "
                            "empty directory", snapshot=name, path=str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.restoring-{os.urandom(4).hex()}"
    with ws.lock("gc", shared=True, wait=None):
        stored = Stored(ws)
        require_objects(stored, snap)
        try:
            method = _materialize(stored, snap, tmp, hardlink, progress)
            if verify:
                check_intact(tmp, snap, check_mode=not hardlink)
            sync_filesystem(tmp)
            os.replace(tmp, dest)  # an empty directory is replaced atomically
            fsync_dir(dest.parent)
        except BaseException:
            _remove_tree(tmp)
            raise
    return RestoreResult(name, dest, snap.file_count, snap.total_size, method)


def _tree_stamp(root: Path) -> dict[str, list[int]]:
    return {rel: [st.st_mode, *stat_key(st)[:4]] for rel, st, _ in walk(root, ["."]) if rel != "."}


def checkout(ws: Workspace, name: str) -> Path:
    """A read-only directory holding snapshot ``name``'s files at their workspace-relative paths.

    Built once under ``.stagekit/checkouts/<name>`` (copies, so a stage that writes into its inputs cannot
    reach the store) and verified against the manifest then; later calls only compare every entry's stat
    with the one recorded at build time, and rebuild on any difference (a file rewritten, added, removed).
    """
    snap = load(ws, name)
    digest = hashlib.sha256(_manifest(ws, name).read_bytes()).hexdigest()
    dest, stamp_path = ws.checkouts_dir / name, ws.checkouts_dir / f"{name}.stamp.json"
    with ws.lock(f"checkout-{name}", wait=None), ws.lock("gc", shared=True, wait=None):
        with contextlib.suppress(OSError, ValueError):
            stamp = json.loads(stamp_path.read_bytes())
            if stamp["manifest"] == digest and dest.is_dir() and stamp["tree"] == _tree_stamp(dest):
                return dest
        _drop_checkout(ws, name)
        stored = Stored(ws)
        require_objects(stored, snap)
        tmp = ws.checkouts_dir / f".tmp~{name}~{os.urandom(4).hex()}"
        try:
            _materialize(stored, snap, tmp, hardlink=False, progress=None)
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


def _drop_checkout(ws: Workspace, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ws.checkouts_dir / f"{name}.stamp.json")
    _remove_tree(ws.checkouts_dir / name)
    with contextlib.suppress(FileNotFoundError):
        for leftover in ws.checkouts_dir.glob(f".tmp~{name}~*"):
            _remove_tree(leftover)


# --- deleting ------------------------------------------------------------------------------------------


def delete(ws: Workspace, name: str, *, wait: float = 0.0) -> DeleteResult:
    """Delete snapshot ``name``, its checkout, and every stored object no other snapshot refers to."""
    check_name(name, "snapshot name", SnapshotError)
    with ws.lock("write", wait=wait, purpose=f"deleting snapshot {name!r}"):
        manifest = _manifest(ws, name)
        if not manifest.exists():
            raise SnapshotNotFoundError(f"no snapshot named {name!r} in workspace {str(ws.root)!r}",
                                        snapshot=name)
        with ws.lock(f"checkout-{name}", wait=None):
            _drop_checkout(ws, name)
        os.unlink(manifest)
        fsync_dir(ws.snapshots_dir)
        removed, freed = _collect_garbage(ws)
    return DeleteResult(name, removed, freed)


def gc(ws: Workspace, *, wait: float = 0.0) -> tuple[int, int]:
    """Remove stored objects no snapshot refers to, and leftovers of crashed creations.

    Returns (objects removed, bytes freed).
    """
    with ws.lock("write", wait=wait, purpose="collecting garbage"):
        return _collect_garbage(ws)


def _collect_garbage(ws: Workspace) -> tuple[int, int]:
    keep = {e.hash for snap in list_snapshots(ws) for e in snap.files}  # a damaged manifest: remove nothing
    return remove_unreferenced(ws, keep)
