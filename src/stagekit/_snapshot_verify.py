"""Checking a snapshot: its stored objects against its manifest, or a directory tree (a restore, a checkout,
the live workspace) against it. Every difference becomes a ``Problem``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from stagekit._snapshot_types import (
    Entry,
    Problem,
    ProgressFn,
    Snapshot,
    SnapshotCorruptError,
    SnapshotError,
)
from stagekit._store import Stored, check_stored, hash_many
from stagekit.workspace import Workspace, walk


def verify_store(ws: Workspace, snap: Snapshot, progress: ProgressFn | None) -> list[Problem]:
    """Every stored object of ``snap`` that is missing or no longer hashes to its name, per entry."""
    files = snap.files
    stored = Stored(ws)
    differ = check_stored(stored, {e.hash: e.size for e in files}, progress)
    problems = []
    for e in files:
        if e.hash not in differ:
            continue
        if (got := differ[e.hash]) is None:
            problems.append(Problem("missing", e.path, f"stored object {e.hash[:16]} is missing" + stored.damage()))
        else:
            problems.append(Problem("changed", e.path, f"stored object {e.hash[:16]} now has {_describe(got)}, "
                                    f"expected {e.size} bytes"))
    return sorted(problems, key=lambda p: p.path)


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


def require_objects(ws: Workspace, snap: Snapshot) -> None:
    """Fail, naming them, if any of the snapshot's stored objects is missing (a cheap check: no hashing)."""
    stored = Stored(ws)
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

