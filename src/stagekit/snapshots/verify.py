"""Comparing a snapshot with what should match it: its stored objects (``verify``), or a tree of files (a
restore, a checkout, the live workspace) with ``compare_tree``. Every difference becomes a ``Problem``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagekit.errors import SnapshotCorruptError, SnapshotError
from stagekit.snapshots import manifest
from stagekit.snapshots.layout import Layout, walk, why
from stagekit.snapshots.manifest import Entry, Snapshot
from stagekit.snapshots.store import Hashed, ProgressFn, Store, hash_files


@dataclass(frozen=True)
class Problem:
    """One difference found by ``verify``: ``kind`` is "changed", "missing" or "extra"."""

    kind: str
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind:<8} {self.path}: {self.detail}"


@dataclass(frozen=True)
class VerifyReport:
    name: str
    files: int
    size: int
    problems: tuple[Problem, ...]
    against: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "files": self.files, "size": self.size,
                "against": self.against, "problems": [vars(p) for p in self.problems]}


def verify(layout: Layout, name: str, *, against: str | os.PathLike[str] | None = None,
           progress: ProgressFn | None = None) -> VerifyReport:
    """Re-hash every stored file of snapshot ``name`` against its manifest.

    With ``against``, compare that directory instead (a restore, or the live workspace root): every changed,
    missing and extra file under the snapshot's paths is listed.
    """
    snap = manifest.load(layout, name)
    try:
        if against is not None:
            problems = compare_tree(Path(against).absolute(), snap, progress, check_mode=True)
            return VerifyReport(name, snap.file_count, snap.total_size, tuple(problems), os.fspath(against))
        store = Store(layout)
        with layout.lock("gc", shared=True, wait=None):
            jobs = {store.path(e.hash): e.size for e in snap.files}
            hashed = hash_files(list(jobs.items()), "verifying", progress)
    except OSError as exc:  # a file that cannot be read (EIO, EACCES): no verdict on it
        raise SnapshotError(f"could not verify snapshot {name!r}: {why(exc)}", snapshot=name,
                            path=os.fsdecode(exc.filename) if isinstance(exc.filename, str | bytes) else None,
                            ) from exc
    problems = []
    for e in snap.files:
        got = hashed[store.path(e.hash)]
        if got is None:
            problems.append(Problem("missing", e.path, f"stored object {e.hash[:16]} is missing"))
        elif got != (e.hash, e.size):
            problems.append(Problem("changed", e.path, f"stored object {e.hash[:16]} now has {_describe(got)}, "
                                    f"expected {e.size} bytes"))
    return VerifyReport(name, snap.file_count, snap.total_size, tuple(sorted(problems, key=lambda p: p.path)))


def _describe(got: tuple[str, int]) -> str:
    return f"{got[1]} bytes hashing to {got[0][:16]}" if got[0] else "something other than a regular file"


def _kind(st: os.stat_result) -> str:
    return "file" if stat.S_ISREG(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else (
        "dir" if stat.S_ISDIR(st.st_mode) else "special file")


def compare_tree(base: Path, snap: Snapshot, progress: ProgressFn | None, check_mode: bool) -> list[Problem]:
    """Every difference between the tree under ``base`` (within the snapshot's paths) and the manifest."""
    if not base.is_dir():
        raise SnapshotError(f"cannot compare with {str(base)!r}: not a directory", path=str(base))
    found = {rel: (st, empty) for rel, st, empty in walk(base, snap.paths)}
    problems: list[Problem] = []
    to_hash: dict[str, Entry] = {}
    for e in snap.entries:
        st = found[e.path][0] if e.path in found else None
        if st is None:
            problems.append(Problem("missing", e.path, f"{e.kind} is missing"))
        elif (kind := _kind(st)) != e.kind:
            problems.append(Problem("changed", e.path, f"is a {kind}, expected a {e.kind}"))
        elif kind == "symlink" and (target := os.readlink(base / e.path)) != e.target:
            problems.append(Problem("changed", e.path, f"points to {target}, expected {e.target}"))
        elif kind != "symlink" and check_mode and stat.S_IMODE(st.st_mode) != e.mode:
            problems.append(Problem("changed", e.path, f"mode {stat.S_IMODE(st.st_mode):04o}, "
                                    f"expected {e.mode:04o}"))
        elif kind == "file":
            to_hash[str(base / e.path)] = e
    expected = {e.path for e in snap.entries}
    problems += [Problem("extra", rel, "is not in the snapshot") for rel, (st, empty) in found.items()
                 if rel not in expected and (empty or not stat.S_ISDIR(st.st_mode))]
    hashed: dict[str, Hashed] = hash_files([(p, e.size) for p, e in to_hash.items()], "verifying", progress)
    for path, e in to_hash.items():
        if (got := hashed[path]) != (e.hash, e.size):
            what = _describe(got) if got is not None else "nothing (it disappeared)"
            problems.append(Problem("changed", e.path, f"has {what}, expected {e.size} bytes hashing to "
                                    f"{e.hash[:16]}"))
    return sorted(problems, key=lambda p: p.path)


def check_intact(root: Path, snap: Snapshot, check_mode: bool) -> None:
    """Fail, listing every difference, unless the tree at ``root`` is exactly the snapshot."""
    if problems := compare_tree(root, snap, None, check_mode):
        raise SnapshotCorruptError(f"snapshot {snap.name!r} is damaged: " + "; ".join(map(str, problems[:5])),
                                   snapshot=snap.name, path=problems[0].path, problems=[str(p) for p in problems])


def require_objects(store: Store, snap: Snapshot) -> None:
    """Fail, naming them, if any of the snapshot's stored objects is missing (a cheap check: no hashing)."""
    gone = store.missing(e.hash for e in snap.files)
    if missing := sorted(e.path for e in snap.files if e.hash in gone):
        raise SnapshotCorruptError(f"snapshot {snap.name!r} is damaged: {len(missing)} stored file(s) are "
                                   "missing: " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""),
                                   snapshot=snap.name, path=missing[0], problems=[f"missing  {m}" for m in missing])
