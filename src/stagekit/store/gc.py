"""Garbage collection of the workspace's object store, which snapshots and the run store share.

Runs write their artifacts into ``.stagekit/objects`` (:mod:`stagekit.store.artifacts`) without taking the
workspace's write lock, and refresh the time of an object they reuse. So what the runs hold is two things
(:func:`run_store_references`): the objects named in the outputs their stage runs recorded, and a cutoff,
the start of the oldest run still running or the time the collection began if that is earlier, from which
an object touched is spared whoever names it. The snapshot layer's ``delete`` and ``gc`` ask for both while
they hold the write lock (their ``keep``, ``stagekit.snapshots.snapshot.OtherReferences``):
``Workspace.delete_snapshot`` and ``Workspace.gc`` pass them, so that neither removes what a run stored.

:func:`collect` is ``stagekit store gc``: it deletes the runs before the last ``keep_runs`` if asked to, then,
through the snapshot layer's gc (one rule, in one place), removes every object that neither a snapshot nor
a remaining run names and that was not touched since the cutoff, and last the run store's temporaries
(``.stagekit/tmp/runs``) older than the cutoff: leftovers of runs that crashed while storing an artifact.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from stagekit.snapshots import snapshot
from stagekit.snapshots.layout import Layout
from stagekit.store.rundb import DATABASE_NAME, RunDatabase

__all__ = ["GcResult", "collect", "existing_database", "run_store_references"]

Root = str | os.PathLike[str] | Layout


@dataclass(frozen=True)
class GcResult:
    """What :func:`collect` did: runs deleted from the run database, objects removed from the store, the
    run store's leftover temporaries removed, and the bytes both freed."""

    runs_deleted: int
    objects_removed: int
    bytes_freed: int
    temporaries_removed: int = 0


def run_store_references(root: Root) -> tuple[set[str], float]:
    """What the runs of the workspace at ``root`` hold in the object store: the objects their recorded
    outputs name (of every run), and the cutoff from which touched objects are spared (the start of the
    oldest running run, or now if earlier). A workspace without a run database holds none (none is
    created), and the cutoff is now: a run that starts meanwhile writes only after it."""
    began = time.time()
    with _database(_layout(root)) as db:
        if db is None:
            return set(), began
        return _references(db, began)


def collect(root: Root, keep_runs: int | None = None, *, wait: float = 0.0) -> GcResult:
    """Collect the object store of the workspace at ``root``: with ``keep_runs``, delete every run before the
    last ``keep_runs`` (a running one stays), then remove the objects no snapshot and no remaining run names,
    sparing those touched since the oldest running run began (or since the collection began), and the run
    store's temporaries older than that.

    ``wait``: seconds to wait for a snapshot creation, deletion or another gc to finish (default: fail at
    once). Holds the workspace's write lock, as ``stagekit snapshot gc`` does; needs no free space.
    """
    if keep_runs is not None and keep_runs < 0:
        raise ValueError(f"keep_runs must be 0 or more, not {keep_runs}")
    layout = _layout(root)
    deleted = 0
    cutoff: float | None = None

    def keep() -> tuple[set[str], float]:  # under the write lock, once the snapshots' manifests are read
        nonlocal deleted, cutoff
        began = time.time()
        with _database(layout) as db:
            if db is None:
                cutoff = began
                return set(), began
            if keep_runs is not None:
                deleted = db.delete_runs(keep_runs)
            referenced, cutoff = _references(db, began)
            return referenced, cutoff

    removed, freed = snapshot.gc(layout, wait=wait, keep=keep)
    assert cutoff is not None  # keep() ran, or gc raised
    temporaries, temporary_bytes = _remove_temporaries(layout, cutoff)
    return GcResult(deleted, removed, freed + temporary_bytes, temporaries)


def existing_database(root: Root) -> RunDatabase | None:
    """The run database of the workspace at ``root`` if it has one (``.stagekit/runs.sqlite``); None, and
    nothing created, if not. The caller closes it."""
    path = _layout(root).state_dir / DATABASE_NAME
    return RunDatabase(path) if path.is_file() else None


# --- helpers -------------------------------------------------------------------------------------------


def _layout(root: Root) -> Layout:
    return root if isinstance(root, Layout) else Layout(root)


@contextlib.contextmanager
def _database(layout: Layout) -> Iterator[RunDatabase | None]:
    db = existing_database(layout)
    try:
        yield db
    finally:
        if db is not None:
            db.close()


def _references(db: RunDatabase, began: float) -> tuple[set[str], float]:
    # Running runs first: one still running then is covered by the cutoff, whatever it records later; one
    # that ended before had recorded its outputs, which the references then read; one that starts after
    # touches its objects after ``began``.
    since = db.running_since()
    referenced = db.referenced_objects()
    return referenced, began if since is None else min(since, began)


def _remove_temporaries(layout: Layout, cutoff: float) -> tuple[int, int]:
    """Remove the run store's temporaries last written before ``cutoff``: (how many, bytes)."""
    folder = layout.tmp_dir / "runs"  # ArtifactStore.tmp
    removed = freed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:  # none yet, or unreadable: nothing to do here (the objects are what matters)
        return 0, 0
    for entry in entries:
        with contextlib.suppress(OSError):
            st = entry.stat(follow_symlinks=False)
            if entry.is_file(follow_symlinks=False) and st.st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
                freed += st.st_size
    return removed, freed
