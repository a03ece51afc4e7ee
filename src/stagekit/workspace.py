"""The workspace: the project directory that stagekit reads inputs from, writes runs to, and snapshots.

``Workspace`` is the front door. It is the workspace's ``Layout`` (its directories, paths and locks, from
``stagekit.snapshots.layout``) with the snapshot operations as methods; those live in
``stagekit.snapshots.snapshot`` and ``stagekit.snapshots.verify``, below this module, and take the layout.
``docs/snapshots.md`` documents the layout and what is guaranteed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from stagekit.atomic import atomic_write_text
from stagekit.errors import WorkspaceError
from stagekit.snapshots import manifest, restore, snapshot, verify
from stagekit.snapshots.layout import Layout, check_name
from stagekit.snapshots.manifest import Snapshot
from stagekit.snapshots.restore import RestoreResult
from stagekit.snapshots.snapshot import CreateResult, DeleteResult
from stagekit.snapshots.store import Progress
from stagekit.snapshots.verify import VerifyReport


class Workspace(Layout):
    """A project directory: ``Workspace(path)``, or ``Workspace.locate()`` to find it as the CLI does."""

    def record_run(self, run_id: str, record: Mapping[str, Any]) -> Path:
        """Write ``runs/<run_id>.json`` atomically (replacing an earlier record of the same run)."""
        check_name(run_id, "run id")
        try:
            text = json.dumps(dict(record), indent=2, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise WorkspaceError(f"the record of run {run_id!r} cannot be written as JSON: {exc}") from exc
        self.runs_dir.mkdir(exist_ok=True)
        return atomic_write_text(self.runs_dir / f"{run_id}.json", text + "\n")

    def create_snapshot(self, name: str, paths: Iterable[str | os.PathLike[str]], *, wait: float = 0.0,
                        rehash: bool = False, progress: Callable[[Progress], None] | None = None,
                        ) -> CreateResult:
        """Snapshot ``paths`` (relative to the root, or absolute inside it) as ``name``."""
        return snapshot.create(self, name, paths, wait=wait, rehash=rehash, progress=progress)

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, by name."""
        return manifest.load_all(self)

    def snapshot(self, name: str) -> Snapshot:
        """The snapshot called ``name`` (its manifest)."""
        return manifest.load(self, name)

    def verify_snapshot(self, name: str, *, against: str | os.PathLike[str] | None = None,
                        progress: Callable[[Progress], None] | None = None) -> VerifyReport:
        """Re-hash the snapshot's stored files (or the files under ``against``) against its manifest."""
        return verify.verify(self, name, against=against, progress=progress)

    def restore_snapshot(self, name: str, to: str | os.PathLike[str], *, hardlink: bool = False,
                         verify: bool = True, progress: Callable[[Progress], None] | None = None,
                         ) -> RestoreResult:
        """Materialise the snapshot into the new (or empty) directory ``to``."""
        return restore.restore(self, name, to, hardlink=hardlink, verify=verify, progress=progress)

    def delete_snapshot(self, name: str, *, wait: float = 0.0) -> DeleteResult:
        """Delete the snapshot, its checkout, and every stored file no other snapshot refers to."""
        return snapshot.delete(self, name, wait=wait)

    def gc(self, *, wait: float = 0.0) -> tuple[int, int]:
        """Remove stored contents no snapshot uses; returns (objects removed, bytes freed)."""
        return snapshot.gc(self, wait=wait)

    def checkout(self, name: str) -> Path:
        """A read-only directory holding the snapshot's files at their workspace-relative paths."""
        return restore.checkout(self, name)


def _json_default(value: object) -> object:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON-serialisable")
