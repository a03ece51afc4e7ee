"""What snapshots are made of, with no behaviour beyond their JSON form: manifest entries and manifests, the
progress reports and results of snapshot operations, and their errors.

They sit below the object store (``stagekit.snapshots.store``) and the verifier (``stagekit.snapshots.verify``),
which use them; ``stagekit.snapshots.snapshot`` is their public home and names them as its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

ALGORITHM = "sha256"
FORMAT = 1
_HASH_RE = re.compile(r"[0-9a-f]{64}")
_BAD_PATH = re.compile(r"^/|(?:^|/)\.{0,2}(?:/|$)")  # absolute, or an empty, "." or ".." component
_BAD_PARTS = ("\0/", "//", "/\0", "\0\0", "/./", "\0./", "/.\0", "\0.\0", "/../", "\0../", "/..\0", "\0..\0")


def first_bad_path(paths: Sequence[str]) -> str | None:
    """The first of ``paths`` that holds a NUL or matches ``_BAD_PATH``, or None.

    Checked by substring searches over all of them at once (10x faster than a regex per path), and one by one
    only when one is found.
    """
    joined = "\0" + "\0".join(paths) + "\0"
    if paths and joined.count("\0") == len(paths) + 1 and not any(part in joined for part in _BAD_PARTS):
        return None
    return next((p for p in paths if "\0" in p or _BAD_PATH.search(p)), None)

ProgressFn = Callable[["Progress"], None]


# --- data ----------------------------------------------------------------------------------------------


class Entry(NamedTuple):  # a NamedTuple: a manifest holds one per file, and it builds 3x faster than a dataclass
    """One manifest line. ``kind`` is "file" (size, hash, mode), "symlink" (target) or "dir" (empty, mode)."""

    path: str
    kind: str
    mode: int = 0
    size: int = 0
    hash: str = ""
    target: str = ""

    def to_json(self) -> dict[str, Any]:
        if self.kind == "file":
            return {"path": self.path, "type": "file", "size": self.size, "hash": self.hash,
                    "mode": f"{self.mode:04o}"}
        if self.kind == "symlink":
            return {"path": self.path, "type": "symlink", "target": self.target}
        return {"path": self.path, "type": "dir", "mode": f"{self.mode:04o}"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        kind, path = data["type"], data["path"]
        if not isinstance(path, str) or _BAD_PATH.search(path):
            raise ValueError(f"entry path {path!r} is not a plain relative path")
        if kind == "file":
            digest = data["hash"]
            if not isinstance(digest, str) or not _HASH_RE.fullmatch(digest):
                raise ValueError(f"entry {path!r} has a malformed hash")
            return cls(path, kind, int(data["mode"], 8), int(data["size"]), digest)
        if kind == "symlink":
            return cls(path, kind, target=str(data["target"]))
        if kind == "dir":
            return cls(path, kind, int(data["mode"], 8))
        raise ValueError(f"unknown entry type {kind!r}")


@dataclass(frozen=True)
class Snapshot:
    """A snapshot's manifest: what ``paths`` held when it was ``created``."""

    name: str
    created: str
    paths: tuple[str, ...]
    entries: tuple[Entry, ...]
    algorithm: str = ALGORITHM

    @property
    def files(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "file"]

    @property
    def file_count(self) -> int:
        return sum(1 for e in self.entries if e.kind == "file")

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries if e.kind == "file")

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "created": self.created, "paths": list(self.paths),
                "files": self.file_count, "size": self.total_size}

    def header(self) -> dict[str, Any]:
        """The manifest without its entries."""
        return {"format": FORMAT, "name": self.name, "created": self.created, "algorithm": self.algorithm,
                "paths": list(self.paths), "file_count": self.file_count, "total_size": self.total_size}

    def to_json(self) -> dict[str, Any]:
        return {**self.header(), "entries": [e.to_json() for e in self.entries]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        return cls.from_header(data, [Entry.from_json(e) for e in data["entries"]])

    @classmethod
    def from_header(cls, header: dict[str, Any], entries: Sequence[Entry]) -> Snapshot:
        """The snapshot with manifest header ``header`` and ``entries``, each checked: a plain relative
        path, nothing under a file or symlink."""
        check_header(header)
        check_paths(entries)
        check_nesting(entries, leaves(entries), parent_dirs(e.path for e in entries))
        return cls(str(header["name"]), str(header["created"]), tuple(header["paths"]), tuple(entries))


# --- checking manifests: used whole by Snapshot.from_header, a share at a time by verify ---------------------


def check_header(header: dict[str, Any]) -> None:
    if header.get("format") != FORMAT or header.get("algorithm") != ALGORITHM:
        raise ValueError(f"unsupported format {header.get('format')!r} or algorithm {header.get('algorithm')!r}")


def check_paths(entries: Sequence[Entry]) -> None:
    """Every entry's path is plain and relative: no NUL, not absolute, no empty, "." or ".." component."""
    if (bad := first_bad_path([e.path for e in entries])) is not None:
        raise ValueError(f"entry path {bad!r} is not a plain relative path")


def leaves(entries: Sequence[Entry]) -> set[str]:
    """The paths of the entries nothing may lie under: files and symlinks."""
    return {e.path for e in entries if e.kind != "dir"}


def parent_dirs(paths: Iterable[str]) -> set[str]:
    """Every directory above one of ``paths``."""
    dirs: set[str] = set()
    for path in {p.rpartition("/")[0] for p in paths}:  # most share their parent: each once
        parent = path
        while parent and parent not in dirs:  # a directory seen before had its own parents added
            dirs.add(parent)
            parent = parent.rpartition("/")[0]
    return dirs


def check_nesting(entries: Sequence[Entry], leaves: set[str], dirs: set[str]) -> None:
    """Nothing lies under a file or symlink (a restore would write through it), given the ``leaves`` and
    ``dirs`` of all the manifest's entries, of which ``entries`` are some or all."""
    if leaves.isdisjoint(dirs):
        return
    for e in entries:
        parent = e.path.rpartition("/")[0]
        while parent:
            if parent in leaves:
                raise ValueError(f"entry {e.path!r} lies under the file or symlink {parent!r}")
            parent = parent.rpartition("/")[0]
    raise ValueError(f"an entry lies under the file or symlink {sorted(leaves & dirs)[0]!r}")


@dataclass(frozen=True)
class Progress:
    """Reported while hashing or copying: ``phase`` is "reading", "verifying" or "restoring"."""

    phase: str
    done: int
    total: int
    done_bytes: int
    total_bytes: int


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

