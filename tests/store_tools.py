"""Reaching into a workspace's object store the way damage would: for tests that tamper with it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from stagekit.snapshots.layout import Layout


def stored_at(ws: Layout, digest: str) -> Path:
    """The file the store keeps ``digest`` in."""
    return ws.objects_dir / digest[:2] / digest


def overwrite_stored(ws: Layout, digest: str, data: bytes, at: int = 0) -> None:
    """Write ``data`` over the stored content, ``at`` bytes into it, in place (as root can, read-only or not)."""
    path = stored_at(ws, digest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data)


def stored_files(ws: Layout) -> list[Path]:
    return sorted(p for p in ws.objects_dir.rglob("*") if p.is_file())


def contents_are_whole(ws: Layout) -> bool:
    """Every object hashes to its name."""
    return all(hashlib.sha256(p.read_bytes()).hexdigest() == p.name for p in stored_files(ws))
