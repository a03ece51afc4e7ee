"""What a snapshot is: its manifest, one JSON document listing every file (path, size, sha256, mode), symlink
(target) and empty directory (mode) under the snapshot's paths.

``dumps`` writes one entry per line (readable, diffable); ``loads`` reads any JSON and checks every entry, so
that a damaged or tampered manifest cannot make a restore write or read outside its target: each path is
split into its parts and none may be empty, "." or ".."; nothing may lie under a file or symlink; a hash is
64 hex digits. ``load`` and ``load_all`` read the manifests of a workspace, ``.stagekit/snapshots/<name>.json``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from stagekit.errors import SnapshotError, SnapshotNotFoundError
from stagekit.snapshots.layout import Layout, check_name

ALGORITHM = "sha256"
FORMAT = 1
_HASH_RE = re.compile(r"[0-9a-f]{64}")


class Entry(NamedTuple):
    """One manifest entry. ``kind`` is "file" (mode, size, hash), "symlink" (target) or "dir" (empty; mode)."""

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
        if kind == "file":
            digest, size = data["hash"], data["size"]
            if not isinstance(digest, str) or not _HASH_RE.fullmatch(digest):
                raise ValueError(f"entry {path!r} has a malformed hash")
            if not isinstance(size, int) or size < 0:
                raise ValueError(f"entry {path!r} has a malformed size")
            return cls(path, kind, _mode(data), size, digest)
        if kind == "symlink":
            if not isinstance(data["target"], str) or not data["target"]:
                raise ValueError(f"entry {path!r} has a malformed target")
            return cls(path, kind, target=data["target"])
        if kind == "dir":
            return cls(path, kind, _mode(data))
        raise ValueError(f"entry {path!r} has the unknown type {kind!r}")


def _mode(data: dict[str, Any]) -> int:
    mode = int(data["mode"], 8)
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"entry {data['path']!r} has a malformed mode")
    return mode


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
        return sum(e.size for e in self.entries)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "created": self.created, "paths": list(self.paths),
                "files": self.file_count, "size": self.total_size}

    def header(self) -> dict[str, Any]:
        """The manifest without its entries."""
        return {"format": FORMAT, "name": self.name, "created": self.created, "algorithm": self.algorithm,
                "paths": list(self.paths), "file_count": self.file_count, "total_size": self.total_size}

    def to_json(self) -> dict[str, Any]:
        return {**self.header(), "entries": [e.to_json() for e in self.entries]}


def dumps(snap: Snapshot) -> str:
    """The manifest as JSON, one entry per line."""
    head = json.dumps(snap.header())
    body = ",\n".join(json.dumps(e.to_json()) for e in snap.entries)
    return f'{head[:-1]}, "entries": [\n{body}\n]}}\n'


def loads(data: bytes | str) -> Snapshot:
    """The snapshot a manifest describes; ``ValueError`` (or ``KeyError``, ``TypeError``) if it is damaged."""
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("the manifest is not a JSON object")
    if doc["format"] != FORMAT or doc["algorithm"] != ALGORITHM:
        raise ValueError(f"unsupported format {doc['format']!r} or algorithm {doc['algorithm']!r}")
    paths = tuple(doc["paths"])
    for p in paths:
        if p != ".":
            _check_path(p)
    entries = tuple(Entry.from_json(e) for e in doc["entries"])
    _check_entries(entries)
    return Snapshot(str(doc["name"]), str(doc["created"]), paths, entries)


def _check_path(path: object) -> list[str]:
    """The parts of a plain relative path; ``ValueError`` for anything else."""
    parts = path.split("/") if isinstance(path, str) and "\0" not in path else [""]
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"entry path {path!r} is not a plain relative path")
    return parts


def _check_entries(entries: Sequence[Entry]) -> None:
    """Every path plain, relative and listed once, and nothing under a file or symlink (a restore would write
    through it)."""
    leaves = {e.path for e in entries if e.kind != "dir"}
    seen: set[str] = set()
    for e in entries:
        parts = _check_path(e.path)
        if e.path in seen:
            raise ValueError(f"entry path {e.path!r} is listed twice")
        seen.add(e.path)
        for i in range(1, len(parts)):
            if (parent := "/".join(parts[:i])) in leaves:
                raise ValueError(f"entry {e.path!r} lies under the file or symlink {parent!r}")


# --- the manifests of a workspace ----------------------------------------------------------------------


def file_of(layout: Layout, name: str) -> Path:
    """Where snapshot ``name``'s manifest is (``SnapshotError`` for a name that is not safe as a file name)."""
    return layout.snapshots_dir / f"{check_name(name, 'snapshot name', SnapshotError)}.json"


def _read(file: Path) -> Snapshot:
    """The manifest in ``file``; ``FileNotFoundError`` if there is none."""
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot manifest {str(file)!r}: {exc.strerror or exc}",
                            snapshot=file.stem, path=str(file)) from exc
    try:
        return loads(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SnapshotError(f"snapshot manifest {str(file)!r} is damaged: {exc}", snapshot=file.stem,
                            path=str(file)) from exc


def load(layout: Layout, name: str) -> Snapshot:
    """Snapshot ``name``; ``SnapshotNotFoundError`` if there is none, ``SnapshotError`` if it is damaged."""
    try:
        return _read(file_of(layout, name))
    except FileNotFoundError:
        raise SnapshotNotFoundError(f"no snapshot named {name!r} in workspace {str(layout.root)!r}",
                                    snapshot=name) from None


def load_all(layout: Layout, but: str | None = None) -> list[Snapshot]:
    """Every snapshot of the workspace (except ``but``), sorted by name."""
    files = sorted(p for p in layout.snapshots_dir.glob("*.json") if not p.name.startswith("."))
    snaps = []
    for p in files:
        if p.stem != but:
            with contextlib.suppress(FileNotFoundError):  # deleted since it was listed
                snaps.append(_read(p))
    return snaps
