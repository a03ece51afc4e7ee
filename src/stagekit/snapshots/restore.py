"""Snapshot operations that read the store into a tree: restore (copy, reflink, or hard links) and the
read-only checkout that pinned runs read. Both hold the gc lock shared, so a deletion cannot remove a content
while they read it; a failure leaves nothing half-made, or names exactly what is left."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from stagekit.atomic import atomic_write_json, copy_file, fsync_dir, sync_filesystem
from stagekit.errors import SnapshotError, StagekitError
from stagekit.snapshots import manifest
from stagekit.snapshots.layout import Layout, stat_key, walk, why
from stagekit.snapshots.manifest import Entry, Snapshot
from stagekit.snapshots.store import Progress, ProgressFn, Store
from stagekit.snapshots.verify import check_intact, require_objects


@dataclass(frozen=True)
class RestoreResult:
    name: str
    path: Path
    files: int
    size: int
    method: str  # "reflink", "copy", "reflink+copy", "hardlink" or "hardlink+copy (N files copied: why)"
    copied: int = 0  # with hardlink: files copied because they could not be linked (another filesystem...)



def restore(layout: Layout, name: str, to: str | os.PathLike[str], *, hardlink: bool = False,
            verify: bool = True, progress: ProgressFn | None = None) -> RestoreResult:
    """Write snapshot ``name`` into directory ``to``, which must not exist or be empty.

    Files are reflinked where the filesystem can, else copied: independent of the store. With ``hardlink``
    every file is a hard link to its stored object instead: fast, but a program that rewrites such a file in
    place (pandas ``to_parquet`` does) changes the stored object too, which ``verify`` then reports. A file
    that cannot be linked (``to`` is on another filesystem, or the object has too many links) is copied,
    and the result's ``method`` says how many were.
    The tree is built beside ``to``, checked against the manifest (unless ``verify=False``) and renamed into
    place, so ``to`` never holds half a restore. On any failure, what the restore made (the tree, and the
    parent directories it created) is removed, and the error says which file failed, or what is left.
    """
    snap = manifest.load(layout, name)
    dest = Path(os.path.abspath(to))
    what = f"restore snapshot {name!r} to {str(dest)!r}"
    real = Path(os.path.realpath(dest.parent)) / dest.name
    if real == layout.state_dir or layout.state_dir in real.parents:
        raise SnapshotError(f"cannot restore into stagekit's own state: {str(dest)!r}", snapshot=name,
                            path=str(dest))
    try:
        taken = os.path.lexists(dest) and (dest.is_symlink() or not dest.is_dir() or any(dest.iterdir()))
    except OSError as exc:
        raise SnapshotError(f"could not {what}: {why(exc)}", snapshot=name, path=str(dest)) from exc
    if taken:
        raise SnapshotError(f"cannot restore snapshot {name!r} to {str(dest)!r}: it exists and is not an "
                            "empty directory", snapshot=name, path=str(dest))
    made = _make_parents(dest.parent, what, name)
    tmp = dest.parent / f".{dest.name}.restoring-{os.urandom(4).hex()}"
    try:
        with layout.lock("gc", shared=True, wait=None):
            store = Store(layout)
            require_objects(store, snap)
            built = _materialize(store, snap, tmp, dest, hardlink, progress)
            if verify:
                check_intact(tmp, snap, check_mode=not hardlink)
            sync_filesystem(tmp)
            os.replace(tmp, dest)  # an empty directory is replaced atomically
    except BaseException as exc:
        if (err := _failed(exc, what, name, str(dest), _clean_up(tmp, made))) is exc:
            raise
        raise err from exc
    try:
        fsync_dir(dest.parent)
    except OSError as exc:
        raise SnapshotError(f"restored snapshot {name!r} to {str(dest)!r}, but its directory entry could not "
                            f"be flushed to disk ({why(exc)}): the restore is complete but may not survive a "
                            "crash", snapshot=name, path=str(dest)) from exc
    return RestoreResult(name, dest, snap.file_count, snap.total_size, built.method, built.copied)


@dataclass(frozen=True)
class _Built:
    method: str
    copied: int  # files copied because they could not be hard-linked


_LINK_REFUSED = {errno.EXDEV: "another filesystem", errno.EMLINK: "too many links to the stored object"}


def _materialize(store: Store, snap: Snapshot, root: Path, shown: Path, hardlink: bool,
                 progress: ProgressFn | None) -> _Built:
    """Write the snapshot's tree into the new directory ``root`` (to become ``shown``); how its files were made.

    An ``OSError`` is raised again saying which entry failed, and its stored object and destination.
    """
    made, methods, refused = {""}, set[str](), set[int]()
    copied = done = done_bytes = 0
    e: Entry | None = None
    doing = f"creating directory {str(shown)!r}"
    try:
        os.mkdir(root)
        for e in snap.entries:
            path = os.path.join(root, e.path)
            if (parent := os.path.dirname(e.path)) not in made:
                doing = f"creating directory {str(shown / parent)!r}"
                os.makedirs(os.path.join(root, parent), exist_ok=True)
                made.add(parent)
            if e.kind == "dir":
                doing = f"creating directory {str(shown / e.path)!r}"
                os.makedirs(path, exist_ok=True)
                os.chmod(path, e.mode)
            elif e.kind == "symlink":
                doing = f"creating symlink {str(shown / e.path)!r} -> {e.target!r}"
                os.symlink(e.target, path)
            else:
                src, linked = store.path(e.hash), False
                if hardlink and errno.EXDEV not in refused:  # across filesystems, every link fails
                    doing = f"linking stored object {src!r} to {str(shown / e.path)!r}"
                    try:
                        os.link(src, path)
                        linked = True
                    except OSError as exc:
                        if exc.errno not in _LINK_REFUSED:
                            raise
                        refused.add(exc.errno)
                if not linked:
                    doing = f"copying stored object {src!r} to {str(shown / e.path)!r}"
                    methods.add(copy_file(src, path, permissions=e.mode))
                    copied += hardlink
                done, done_bytes = done + 1, done_bytes + e.size
                if progress is not None:
                    progress(Progress("restoring", done, snap.file_count, done_bytes, snap.total_size))
    except OSError as exc:  # say which entry, from where to where: the caller words the rest
        where = f"{e.path}: " if e is not None else ""
        raise OSError(exc.errno, f"{where}{exc.strerror or exc} ({doing})") from exc
    if not hardlink:
        return _Built("+".join(sorted(methods)) or "copy", 0)
    if not copied:
        return _Built("hardlink", 0)
    why_copied = ", ".join(_LINK_REFUSED[n] for n in sorted(refused))
    return _Built(f"hardlink+copy ({copied} file{'s' * (copied != 1)} copied: {why_copied})", copied)


def _make_parents(path: Path, what: str, name: str) -> list[Path]:
    """Create directory ``path`` and its missing parents; the ones created, outermost first."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    if not path.is_dir():
        raise SnapshotError(f"could not {what}: {str(path)!r} is in the way (it is not a directory)",
                            snapshot=name, path=str(path))
    made: list[Path] = []
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except OSError as exc:
            left = _clean_up(None, made)
            raise SnapshotError(f"could not {what}: cannot create directory {str(d)!r}: "
                                f"{exc.strerror or exc}{_left_note(left)}", snapshot=name, path=str(d)) from exc
        made.append(d)
    return made


def _clean_up(tree: Path | None, made: list[Path]) -> list[str]:
    """Remove a partial ``tree`` and then the directories in ``made`` (innermost last in the list); what could
    not be removed, and why."""
    left = []
    if tree is not None:
        try:
            _remove_tree(tree)
        except OSError as exc:
            left.append(f"{str(tree)!r} ({exc.strerror or exc})")
    for d in reversed(made):
        try:
            os.rmdir(d)
        except OSError as exc:
            left.append(f"{str(d)!r} ({exc.strerror or exc})")
    return left


def _left_note(left: list[str], nothing: str = "; nothing was left behind") -> str:
    return f"; could not remove what it made: {', '.join(left)}" if left else nothing


def _failed(exc: BaseException, what: str, name: str, path: str, left: list[str]) -> BaseException:
    """The error to raise for ``exc``, which made ``what`` fail, having left ``left`` behind."""
    if isinstance(exc, OSError):
        return SnapshotError(f"could not {what}: {why(exc)}{_left_note(left)}", snapshot=name, path=path)
    if left and isinstance(exc, StagekitError):
        return SnapshotError(f"{exc}{_left_note(left)}", snapshot=name, path=getattr(exc, "path", None) or path,
                             problems=getattr(exc, "problems", ()))
    if left:
        exc.add_note(_left_note(left)[2:])
    return exc


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
    A valid checkout is returned without writing anything (so on a full disk too); a build that fails
    leaves no checkout, and the error names the file.
    """
    snap = manifest.load(layout, name)
    file = manifest.file_of(layout, name)
    try:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError as exc:
        raise SnapshotError(f"could not check out snapshot {name!r}: {why(exc)}", snapshot=name,
                            path=str(file)) from exc
    dest, stamp_path = layout.checkouts_dir / name, layout.checkouts_dir / f"{name}.stamp.json"
    what = f"check out snapshot {name!r} into {str(dest)!r}"
    with layout.lock(f"checkout-{name}", wait=None), layout.lock("gc", shared=True, wait=None):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            stamp = json.loads(stamp_path.read_bytes())
            if stamp["manifest"] == digest and dest.is_dir() and stamp["tree"] == _tree_stamp(dest):
                return dest
        try:
            drop_checkout(layout, name)
        except OSError as exc:
            raise SnapshotError(f"could not {what}: cannot remove the old checkout: {why(exc)}", snapshot=name,
                                path=filename_of(exc) or str(dest)) from exc
        store = Store(layout)
        require_objects(store, snap)
        tmp = layout.checkouts_dir / f".tmp~{name}~{os.urandom(4).hex()}"
        try:
            _materialize(store, snap, tmp, dest, hardlink=False, progress=None)
            check_intact(tmp, snap, check_mode=True)
            for rel, st, _ in reversed(list(walk(tmp, ["."]))):  # deepest first; the top stays writable
                if rel != "." and not stat.S_ISLNK(st.st_mode):
                    os.chmod(tmp / rel, stat.S_IMODE(st.st_mode) & ~0o222)
            os.rename(tmp, dest)
        except BaseException as exc:
            if (err := _failed(exc, what, name, str(dest), _clean_up(tmp, []))) is exc:
                raise
            raise err from exc
        with contextlib.suppress(OSError):  # without its stamp, a whole checkout is only rebuilt next time
            atomic_write_json(stamp_path, {"manifest": digest, "tree": _tree_stamp(dest)})
    return dest


def drop_checkout(layout: Layout, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(layout.checkouts_dir / f"{name}.stamp.json")
    for leftover in (layout.checkouts_dir / name, *layout.checkouts_dir.glob(f".tmp~{name}~*")):
        _remove_tree(leftover)


# --- deleting ------------------------------------------------------------------------------------------



def filename_of(exc: OSError) -> str | None:
    return os.fsdecode(exc.filename) if isinstance(exc.filename, str | bytes) else None
