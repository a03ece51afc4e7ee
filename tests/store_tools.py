"""Reaching into a workspace's object store the way damage would: for tests that tamper with it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from stagekit.snapshots.packs import Packs, pack_of
from stagekit.snapshots.workspace import Workspace


def stored_at(ws: Workspace, digest: str) -> tuple[Path, int, int]:
    """(file, offset, size) of where the store keeps ``digest``: a pack, or a file of its own."""
    loc = Packs(str(ws.packs_dir)).where.get(digest)
    if loc is not None:
        pack, offset, size = loc
        return Path(pack), offset, size
    path = ws.objects_dir / digest[:2] / digest
    return path, 0, path.stat().st_size


def overwrite_stored(ws: Workspace, digest: str, data: bytes, at: int = 0) -> None:
    """Write ``data`` over the stored content, ``at`` bytes into it, in place (as root can, read-only or not)."""
    path, offset, size = stored_at(ws, digest)
    assert at + len(data) <= size, "would spill into the next content"
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset + at)
        f.write(data)


def remove_stored(ws: Workspace, digest: str) -> list[str]:
    """Remove the stored content; returns the digests that went with it (a pack goes whole)."""
    path, _, _ = stored_at(ws, digest)
    if path.suffix != ".pack":
        path.unlink()
        return [digest]
    packs = Packs(str(ws.packs_dir))
    index = next(i for i in packs.indexes if pack_of(i) == str(path))
    path.unlink()
    return [d for d, _, _ in packs.indexes[index]]


def stored_files(ws: Workspace) -> list[str]:
    """Every file of the store, relative to the state dir: objects, packs and indexes."""
    return sorted(p.relative_to(ws.state_dir).as_posix() for d in (ws.objects_dir, ws.packs_dir)
                  for p in d.rglob("*") if p.is_file())


def contents_are_whole(ws: Workspace) -> bool:
    """Every content the store names hashes to its name: loose objects and indexed packed contents."""
    for p in ws.objects_dir.rglob("*"):
        if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() != p.name:
            return False
    packs = Packs(str(ws.packs_dir))
    for index, entries in packs.indexes.items():
        data = Path(pack_of(index)).read_bytes()
        if any(hashlib.sha256(data[off:off + size]).hexdigest() != d for d, off, size in entries):
            return False
    return not packs.damaged


def content_count(ws: Workspace) -> int:
    """How many distinct contents the store holds."""
    loose = {p.name for p in ws.objects_dir.rglob("*") if p.is_file()}
    return len(loose | set(Packs(str(ws.packs_dir)).where))
