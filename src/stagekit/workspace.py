"""The workspace: the project directory that stagekit reads inputs from, writes runs to, and snapshots.

``Workspace`` is the front door. It is the workspace's ``Layout`` (its directories, paths and locks, from
``stagekit.snapshots.layout``) with the snapshot and run store operations as methods; those live in
``stagekit.snapshots`` (``snapshot``, ``restore``, ``verify``) and ``stagekit.store`` (``gc``, ``rundb``,
``artifacts``), below this module, and take the layout or the root. The two share the object store: the
snapshot layer knows nothing of runs, so this module hands its deletions what the runs hold
(``stagekit.store.gc.run_store_references``). The run store is imported on first use, so that importing
this module stays cheap. ``docs/snapshots.md`` and ``docs/store.md`` document the layout and what is
guaranteed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagekit.atomic import atomic_write_text
from stagekit.errors import WorkspaceError
from stagekit.snapshots import manifest, restore, snapshot, verify
from stagekit.snapshots.layout import Layout, check_name
from stagekit.snapshots.manifest import Snapshot
from stagekit.snapshots.restore import RestoreResult
from stagekit.snapshots.snapshot import CreateResult, DeleteResult
from stagekit.snapshots.store import Progress
from stagekit.snapshots.verify import VerifyReport

if TYPE_CHECKING:
    from stagekit.plugins.host import Host
    from stagekit.store.gc import GcResult
    from stagekit.store.rundb import RunEntry


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
        """Delete the snapshot, its checkout, and every stored file that no other snapshot and no recorded run
        refers to (sparing what was touched since the oldest running run began)."""
        from stagekit.store.gc import run_store_references

        return snapshot.delete(self, name, wait=wait, keep=lambda: run_store_references(self))

    def gc(self, *, wait: float = 0.0) -> tuple[int, int]:
        """Remove stored contents that no snapshot and no recorded run uses (sparing what was touched since the
        oldest running run began); returns (objects removed, bytes freed)."""
        from stagekit.store.gc import run_store_references

        return snapshot.gc(self, wait=wait, keep=lambda: run_store_references(self))

    # --- the run store -------------------------------------------------------------------------------

    def store_gc(self, *, keep_runs: int | None = None, wait: float = 0.0) -> GcResult:
        """``stagekit store gc``: with ``keep_runs``, delete the runs before the last ``keep_runs`` (running ones
        stay); then remove the stored objects that no snapshot and no remaining run uses, sparing what was
        touched since the oldest running run began, and the run store's leftover temporaries."""
        from stagekit.store.gc import collect

        return collect(self, keep_runs, wait=wait)

    def runs(self, limit: int | None = 20) -> list[RunEntry]:
        """The latest recorded runs, newest first (all with ``limit=None``); none in a workspace without a run
        database (none is created)."""
        from stagekit.store.gc import existing_database

        db = existing_database(self)
        if db is None:
            return []
        try:
            return db.runs(limit)
        finally:
            db.close()

    def load(self, artifact: str, run: str = "latest", *, host: Host | None = None) -> Any:
        """The stored value of ``artifact`` in ``run`` (a run id, a prefix only it has, or "latest": the newest
        run that stored it), read through the codecs of ``host`` (default: the installed plugins').

        The bytes are verified while they are read. A :class:`~stagekit.errors.RunStoreError` names what is
        missing (an unknown artifact: what the run stored instead), a
        :class:`~stagekit.errors.CorruptObjectError` the object whose bytes no longer match, a
        :class:`~stagekit.errors.CodecError` a codec that cannot read it; each names the artifact and run.
        """
        from stagekit.errors import CodecError, CorruptObjectError, RunStoreError
        from stagekit.plugins.host import Host
        from stagekit.store.artifacts import ArtifactStore, StoredArtifact
        from stagekit.store.codecs import CodecTable
        from stagekit.store.gc import existing_database

        db = existing_database(self)
        if db is None:
            raise RunStoreError(f"no stored artifact {artifact!r}: no run is recorded in workspace "
                                f"{str(self.root)!r} yet", path=str(self.state_dir))
        try:
            stage_run, entry = db.latest_output(artifact, run)
        finally:
            db.close()
        where = f"artifact {artifact!r} of run {stage_run.run_id} (stage {stage_run.stage!r})"
        stored = StoredArtifact.from_json(entry)
        if stored is None:
            raise RunStoreError(f"{where} is recorded in a form this stagekit cannot read: {dict(entry)!r}",
                                path=str(db.path))
        table = CodecTable.from_registrations((Host.installed() if host is None else host).registry.codecs)
        try:
            return ArtifactStore(self.root, table).load(stored, artifact)
        except CorruptObjectError as exc:
            raise CorruptObjectError(f"cannot load {where}: {exc}", path=exc.path, digest=exc.digest) from exc
        except CodecError as exc:
            raise CodecError(f"cannot load {where}: {exc}", codec=exc.codec, origin=exc.origin) from exc

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
