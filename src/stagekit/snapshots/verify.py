"""Checking a snapshot: its stored objects against its manifest, or a directory tree (a restore, a checkout,
the live workspace) against it. Every difference becomes a ``Problem``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, NamedTuple

from stagekit._collector import collector_paused
from stagekit.snapshots import store as _store
from stagekit.snapshots.forked import can_fork, map_shares
from stagekit.snapshots.manifest import cut, entries, file_columns, layout, lines, loads
from stagekit.snapshots.store import Stored, check_stored, hash_many
from stagekit.snapshots.types import (
    Entry,
    Problem,
    Progress,
    ProgressFn,
    Snapshot,
    SnapshotCorruptError,
    SnapshotError,
    check_header,
    check_nesting,
    check_paths,
    first_bad_path,
    leaves,
    parent_dirs,
)
from stagekit.snapshots.workspace import Workspace, walk

# A manifest is verified by a forked process per worker only from these many entries, or bytes of files that
# threads cannot share out (smaller than _store._SMALL_FILES): forking costs ~2 ms.
_SPLIT_LINES, _SPLIT_BYTES = 2_000, 8 << 20


class _Checked(NamedTuple):
    """What verifying a share of a manifest found."""

    problems: list[Problem]
    files: int
    size: int
    leaves: set[str]  # paths nothing may lie under: files and symlinks
    dirs: set[str]  # directories above an entry


def verify_store(ws: Workspace, manifest: bytes, progress: ProgressFn | None) -> tuple[int, int, list[Problem]]:
    """(files, bytes, problems): every stored content of the manifest's snapshot that is missing or no longer
    hashes to its name, per entry. ``ValueError``, ``KeyError`` or ``TypeError`` if the manifest is damaged.

    Verifying thousands of small files is mostly Python work per entry, so a long manifest is cut into
    shares, one per worker, each parsed, checked and hashed by a forked process (``stagekit.snapshots.forked``); the
    checks that span the whole manifest (nothing under a file) are then made on what the shares found.
    """
    with collector_paused():  # it would rescan, again and again, the strings and tuples of every entry
        return _verify_store(ws, manifest, progress)


def _verify_store(ws: Workspace, manifest: bytes, progress: ProgressFn | None) -> tuple[int, int, list[Problem]]:
    stored = Stored(ws)  # read before forking: every share uses it
    laid = layout(manifest)
    if laid is None:  # not laid out as stagekit writes it: read it whole, verify it here
        checked = [_check_entries(stored, list(loads(manifest).entries), progress)]
    else:
        header, text = laid
        check_header(header)
        n = _store._WORKERS if _worth_forking(text.count("\n") + 1, header.get("total_size")) and can_fork() else 1
        shares = cut(text, n)
        here = _whole(progress, header) if n > 1 else progress  # only the first share, here, reports
        checked = map_shares(lambda share: _check_share(stored, share, here if share is shares[0] else None),
                             shares) if shares else []
        all_leaves = set().union(*(c.leaves for c in checked))
        all_dirs = set().union(*(c.dirs for c in checked))
        if not all_leaves.isdisjoint(all_dirs):
            check_nesting(entries(lines(text)), all_leaves, all_dirs)  # raises, naming the entry
    problems = sorted((p for c in checked for p in c.problems), key=lambda p: p.path)
    return sum(c.files for c in checked), sum(c.size for c in checked), problems


def _worth_forking(files: int, size: object) -> bool:
    """Whether a share per process pays: many files, or many MiB of files too small for threads to share out."""
    small = isinstance(size, int) and size >= _SPLIT_BYTES and size / files < _store._SMALL_FILES
    return files >= _SPLIT_LINES or small


def _whole(progress: ProgressFn | None, header: dict[str, Any]) -> ProgressFn | None:
    """``progress``, told the whole manifest's totals while it hears of one share's."""
    files, size = header.get("file_count"), header.get("total_size")
    if progress is None or not isinstance(files, int) or not isinstance(size, int):
        return progress
    return lambda p: progress(Progress(p.phase, p.done, max(files, p.total), p.done_bytes, max(size, p.total_bytes)))


def _check_share(stored: Stored, text: str, progress: ProgressFn | None) -> _Checked:
    columns = file_columns(text)
    if columns is None:  # not only plain files' lines
        return _check_entries(stored, entries(lines(text)), progress)
    paths, sizes, hashes = columns
    if (bad := first_bad_path(paths)) is not None:
        raise ValueError(f"entry path {bad!r} is not a plain relative path")
    return _check_files(stored, paths, sizes, hashes, progress, set(paths), parent_dirs(paths))


def _check_entries(stored: Stored, entries: list[Entry], progress: ProgressFn | None) -> _Checked:
    check_paths(entries)
    files = [e for e in entries if e.kind == "file"]
    return _check_files(stored, [e.path for e in files], [e.size for e in files], [e.hash for e in files],
                        progress, leaves(entries), parent_dirs(e.path for e in entries))


def _check_files(stored: Stored, paths: list[str], sizes: list[int], hashes: list[str],
                 progress: ProgressFn | None, leaves: set[str], dirs: set[str]) -> _Checked:
    differ = check_stored(stored, dict(zip(hashes, sizes, strict=True)), progress)
    problems = []
    if differ:
        for path, size, digest in zip(paths, sizes, hashes, strict=True):
            if digest not in differ:
                continue
            if (got := differ[digest]) is None:
                problems.append(Problem("missing", path, f"stored object {digest[:16]} is missing" + stored.damage()))
            else:
                problems.append(Problem("changed", path, f"stored object {digest[:16]} now has {_describe(got)}, "
                                        f"expected {size} bytes"))
    return _Checked(problems, len(paths), sum(sizes), leaves, dirs)


def _describe(got: tuple[str, int]) -> str:
    return f"{got[1]} bytes hashing to {got[0][:16]}" if got[0] else "something other than a regular file"


def compare_tree(base: Path, snap: Snapshot, progress: ProgressFn | None, check_mode: bool,
                 ) -> list[Problem]:
    """Every difference between the files under ``base`` (within the snapshot's paths) and the manifest."""
    if not base.is_dir():
        raise SnapshotError(f"cannot compare with {str(base)!r}: not a directory", path=str(base))
    found = {rel: (st, empty) for rel, st, empty in walk(base, snap.paths)}
    problems: list[Problem] = []
    to_hash: dict[str, Entry] = {}
    for e in snap.entries:
        got = found.get(e.path)
        if got is None:
            problems.append(Problem("missing", e.path, f"{e.kind} is missing"))
            continue
        st = got[0]
        kind = "file" if stat.S_ISREG(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else (
            "dir" if stat.S_ISDIR(st.st_mode) else "special file")
        if kind != e.kind:
            problems.append(Problem("changed", e.path, f"is a {kind}, expected a {e.kind}"))
        elif kind == "symlink" and (target := os.readlink(base / e.path)) != e.target:
            problems.append(Problem("changed", e.path, f"points to {target}, expected {e.target}"))
        elif kind != "symlink" and check_mode and stat.S_IMODE(st.st_mode) != e.mode:
            problems.append(Problem("changed", e.path, f"mode {stat.S_IMODE(st.st_mode):04o}, "
                                    f"expected {e.mode:04o}"))
        elif kind == "file":
            to_hash[str(base / e.path)] = e
    expected = {e.path for e in snap.entries}
    for rel, (st, empty) in found.items():
        if rel not in expected and (empty or not stat.S_ISDIR(st.st_mode)):
            problems.append(Problem("extra", rel, "is not in the snapshot"))
    hashed = hash_many([(p, e.size) for p, e in to_hash.items()], "verifying", progress)
    for path, e in to_hash.items():
        if (digest := hashed[path]) != (e.hash, e.size):
            what = _describe(digest) if digest is not None else "nothing (it disappeared)"
            problems.append(Problem("changed", e.path, f"has {what}, expected {e.size} bytes hashing to "
                                    f"{e.hash[:16]}"))
    return sorted(problems, key=lambda p: p.path)


def require_objects(stored: Stored, snap: Snapshot) -> None:
    """Fail, naming them, if any of the snapshot's stored objects is missing (a cheap check: no hashing)."""
    missing = sorted({e.path for e in snap.files if not stored.exists(e.hash)})
    if missing:
        more = " ..." if len(missing) > 5 else ""
        raise SnapshotCorruptError(f"snapshot {snap.name!r} is damaged: {len(missing)} stored file(s) are "
                                   "missing" + stored.damage() + ": " + ", ".join(missing[:5]) + more,
                                   snapshot=snap.name, path=missing[0],
                                   problems=[f"missing  {m}" for m in missing])


def check_intact(root: Path, snap: Snapshot, check_mode: bool) -> None:
    """Fail, listing every difference, unless the tree at ``root`` is exactly the snapshot."""
    problems = compare_tree(root, snap, None, check_mode)
    if problems:
        raise SnapshotCorruptError(f"snapshot {snap.name!r} is damaged: " + "; ".join(map(str, problems[:5])),
                                   snapshot=snap.name, path=problems[0].path,
                                   problems=[str(p) for p in problems])

