"""The stat cache, ``.stagekit/cache/stat.json``: relative path -> [size, mtime_ns, ctime_ns, inode, device,
sha256] of each file when it was last hashed, so that taking a snapshot again does not re-read unchanged files.

A file modified so shortly before it was read that a later write might not move its timestamps (within
0.1 s, or 2 s on filesystems with whole-second timestamps) is not cached. It is a hint, not a record: a
missing or damaged cache only costs re-reading, and it is written without fsync.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from stagekit.atomic import atomic_write_json
from stagekit.snapshots.layout import Layout, ScanItem, stat_key, within

_FORMAT = 1


class StatCache:
    def __init__(self, layout: Layout, rehash: bool) -> None:
        self.path = layout.cache_dir / "stat.json"
        self.files: dict[str, list[Any]] = {} if rehash else self._read()
        self.dirty = rehash

    def _read(self) -> dict[str, list[Any]]:
        try:
            data = json.loads(self.path.read_bytes())
            if data["format"] == _FORMAT and data["algorithm"] == "sha256":
                return dict(data["files"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return {}

    def lookup(self, item: ScanItem) -> str | None:
        """The sha256 of ``item`` if it is unchanged since it was hashed, else None."""
        found = self.files.get(item.rel)
        return str(found[5]) if found is not None and found[:5] == stat_key(item.st) else None

    def remember(self, rel: str, st: os.stat_result, digest: str, started_ns: int) -> None:
        """``rel`` had stat ``st`` and hashed to ``digest`` in a read that began at ``started_ns``."""
        self.dirty = True
        granularity = 2_000_000_000 if st.st_ctime_ns % 1_000_000_000 == 0 else 100_000_000
        if max(st.st_mtime_ns, st.st_ctime_ns) >= started_ns - granularity:  # too recent to trust
            self.files.pop(rel, None)
        else:
            self.files[rel] = [*stat_key(st), digest]

    def save(self, roots: Sequence[str], seen: set[str]) -> None:
        """Forget files under ``roots`` that are gone (not in ``seen``), and write the cache if it changed."""
        gone = [rel for rel in self.files if rel not in seen and within(rel, roots)]
        for rel in gone:
            del self.files[rel]
        if self.dirty or gone:
            atomic_write_json(self.path, {"format": _FORMAT, "algorithm": "sha256", "files": self.files},
                              fsync=False, separators=(",", ":"))
