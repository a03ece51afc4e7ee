"""The run database: every run and every stage run, in SQLite in the workspace (``.stagekit/runs.sqlite``).

Standard library ``sqlite3`` in WAL mode: readers never wait for a writer, and several processes can record
runs at once (each write is one short ``BEGIN IMMEDIATE`` transaction; a writer waits for another up to a
busy timeout). Each record is committed when it is written, so a crash keeps everything that finished;
``synchronous=NORMAL``: a power cut may lose the last records, never the database's consistency.

Tables (schema version :data:`SCHEMA_VERSION`, in ``schema_version``; a newer one is refused):

- ``runs``: run id, pipeline, start and end (Unix time), status (running, ok, failed, interrupted), the
  snapshot the run was pinned to, the executor, how many stages it planned, and the host and pid that ran it
  (a "running" run whose process is gone from this host reads back as "crashed").
- ``stage_runs``: each stage run of a run: stage, status (ok, failed, cancelled, cached), fingerprint,
  duration, params, the digests of its inputs and outputs (JSON objects, artifact -> digest or null where
  not stored; ``json_each`` reads them in SQL), error, plugin.

:class:`RunRecorder` is the lifecycle-hook plugin that writes a run's records as it goes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from stagekit.errors import RunStoreError

if TYPE_CHECKING:
    pass

__all__ = ["DATABASE_NAME", "SCHEMA_VERSION", "RunDatabase", "RunEntry", "StageRun"]

DATABASE_NAME = "runs.sqlite"
SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE, pipeline TEXT NOT NULL,
        started REAL NOT NULL, ended REAL, status TEXT NOT NULL, snapshot TEXT, executor TEXT,
        stages INTEGER, host TEXT NOT NULL, pid INTEGER NOT NULL)""",
    """CREATE TABLE stage_runs (
        id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        stage TEXT NOT NULL, status TEXT NOT NULL, fingerprint TEXT, duration REAL NOT NULL,
        params TEXT NOT NULL, inputs TEXT NOT NULL, outputs TEXT NOT NULL, error TEXT, plugin TEXT,
        recorded REAL NOT NULL)""",
    "CREATE INDEX stage_runs_of_run ON stage_runs (run_id)",
    "CREATE INDEX stage_runs_by_fingerprint ON stage_runs (stage, fingerprint) WHERE fingerprint IS NOT NULL",
)
_RUN_COLUMNS = "run_id, pipeline, started, ended, status, snapshot, executor, stages, host, pid"
_STAGE_COLUMNS = "id, run_id, stage, status, fingerprint, duration, params, inputs, outputs, error, plugin, recorded"
_HOST = socket.gethostname()


@attrs.frozen
class StageRun:
    """One stage's run: ``status`` is ok, failed, cancelled or cached; ``inputs`` and ``outputs`` map
    artifact names to their stored digests (None where not stored). ``run_id``, ``id`` and ``recorded``
    (Unix time) are filled in when read back."""

    stage: str
    status: str
    duration: float = 0.0
    fingerprint: str | None = None
    params: Mapping[str, Any] = attrs.field(factory=dict)
    inputs: Mapping[str, str | None] = attrs.field(factory=dict)
    outputs: Mapping[str, str | None] = attrs.field(factory=dict)
    error: str | None = None
    plugin: str | None = None
    run_id: str | None = None
    id: int | None = None
    recorded: float | None = None


@attrs.frozen
class RunEntry:
    """One run as recorded. ``status`` is running, ok, failed or interrupted, or "crashed" for a run left
    "running" by a process that is gone (known only on the host that ran it)."""

    run_id: str
    pipeline: str
    started: float
    ended: float | None
    status: str
    snapshot: str | None = None
    executor: str | None = None
    stages: int | None = None
    host: str | None = None
    pid: int | None = None

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


class RunDatabase:
    """The run database at ``path`` (created if missing): ``RunDatabase.in_workspace(root)`` opens the one of
    a workspace. Safe to share between threads; each process opens its own connection (a forked child
    reconnects). Every failure is a :class:`RunStoreError` naming the file."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        with self._lock, self._guard("read its schema"):
            self._connection()

    @classmethod
    def in_workspace(cls, root: str | os.PathLike[str] | None = None, **options: Any) -> RunDatabase:
        """The database of the workspace at ``root`` (else located as the CLI does), in its ``.stagekit``."""
        from stagekit.snapshots.layout import Layout

        layout = Layout.locate(root)
        layout.ensure_state()
        return cls(layout.state_dir / DATABASE_NAME, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # --- writing ---------------------------------------------------------------------------------------

    def begin_run(self, run_id: str | None = None, *, pipeline: str, snapshot: str | None = None,
                  executor: str | None = None, stages: int | None = None, started: float | None = None) -> str:
        """Record a run as started ("running"); returns its id (a new one if not given)."""
        run_id = run_id or uuid.uuid4().hex[:12]
        row = (run_id, pipeline, time.time() if started is None else started, None, "running", snapshot, executor,
               stages, _HOST, os.getpid())
        with self._write(f"record the start of run {run_id!r}",
                         integrity=f"run {run_id!r} is already recorded in {self.path}") as conn:
            conn.execute(f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        return run_id

    def record_stage(self, run_id: str, stage_run: StageRun) -> None:
        """Record one stage run of ``run_id``, committed at once."""
        self.record_stages(run_id, [stage_run])

    def record_stages(self, run_id: str, stage_runs: Iterable[StageRun]) -> None:
        """Record several stage runs of ``run_id`` in one transaction (all or none)."""
        stage_runs = list(stage_runs)
        if not stage_runs:
            return
        what = repr(stage_runs[0].stage) if len(stage_runs) == 1 else f"{len(stage_runs)} stages"
        now = time.time()
        rows = [(run_id, s.stage, s.status, s.fingerprint, float(s.duration), _json(s.params), _json(s.inputs),
                 _json(s.outputs), s.error, s.plugin, now) for s in stage_runs]
        with self._write(f"record stage {what} of run {run_id!r}",
                         integrity=f"no run {run_id!r} in {self.path} (begin_run first)") as conn:
            conn.executemany(f"INSERT INTO stage_runs ({_STAGE_COLUMNS.partition(', ')[2]}) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def end_run(self, run_id: str, status: str, *, ended: float | None = None) -> None:
        """Record how the run ended (ok, failed, interrupted) and when."""
        with self._write(f"record the end of run {run_id!r}") as conn:
            updated = conn.execute("UPDATE runs SET status = ?, ended = ? WHERE run_id = ?",
                                   (status, time.time() if ended is None else ended, run_id)).rowcount
            if not updated:
                raise RunStoreError(f"no run {run_id!r} in {self.path} (begin_run first)", path=str(self.path))

    # --- reading ---------------------------------------------------------------------------------------

    def runs(self, limit: int | None = 20) -> list[RunEntry]:
        """The latest runs, newest first (all with ``limit=None``)."""
        with self._read("list the runs") as conn:
            rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY seq DESC LIMIT ?",
                                (-1 if limit is None else limit,)).fetchall()
        return [_run_entry(r) for r in rows]

    def run(self, run_id: str = "latest") -> RunEntry:
        """One run: by id, by a prefix that only it has, or "latest"."""
        with self._read(f"read run {run_id!r}") as conn:
            if run_id == "latest":
                rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY seq DESC LIMIT 1").fetchall()
            else:
                rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchall() or \
                    conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY seq DESC "
                                 "LIMIT 6", (len(run_id), run_id)).fetchall()
        if len(rows) == 1:
            return _run_entry(rows[0])
        if rows:
            raise RunStoreError(f"run id {run_id!r} is ambiguous in {self.path}: "
                                + ", ".join(r[0] for r in rows[:5]) + ("..." if len(rows) > 5 else ""),
                                path=str(self.path))
        raise RunStoreError(f"no run {run_id!r} in {self.path}" if run_id != "latest" else
                            f"no run is recorded in {self.path} yet", path=str(self.path))

    def stage_runs(self, run_id: str) -> list[StageRun]:
        """The stage runs of ``run_id``, in the order they were recorded."""
        with self._read(f"read the stages of run {run_id!r}") as conn:
            rows = conn.execute(f"SELECT {_STAGE_COLUMNS} FROM stage_runs WHERE run_id = ? ORDER BY id",
                                (run_id,)).fetchall()
        return [_stage_run(r) for r in rows]

    def latest_stage_run(self, stage: str, fingerprint: str) -> StageRun | None:
        """The latest successful (ok or cached) run of ``stage`` with this fingerprint, if any."""
        with self._read(f"look up stage {stage!r}") as conn:
            rows = conn.execute(f"SELECT {_STAGE_COLUMNS} FROM stage_runs WHERE stage = ? AND fingerprint = ? AND "
                                "status IN ('ok', 'cached') ORDER BY id DESC LIMIT 1", (stage, fingerprint)).fetchall()
        return _stage_run(rows[0]) if rows else None

    # --- the connection, transactions and errors -------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # a forked child never uses its parent's
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA foreign_keys = ON")
                self._retrying(lambda: self._prepare(conn))  # before WAL: a file that is not ours is left as is
                self._retrying(lambda: conn.execute("PRAGMA journal_mode = WAL"))
                conn.execute("PRAGMA synchronous = NORMAL")
            except BaseException:
                conn.close()
                raise
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Create the schema in a new file; refuse a newer schema, or a database that is not a run database."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables - {"sqlite_sequence"}:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif "schema_version" not in tables:
                raise RunStoreError(f"{self.path} is an SQLite database, but not stagekit's run database (it has no "
                                    "schema_version table); move it aside", path=str(self.path))
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()  # in the same transaction
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        version = row[0] if row else None
        if version is None or version > SCHEMA_VERSION:
            raise RunStoreError(
                f"the run database {self.path} has schema version {version}, newer than this stagekit knows "
                f"({SCHEMA_VERSION}): a newer stagekit wrote it; upgrade stagekit (pip install -U stagekit) or "
                "move the file aside", path=str(self.path))

    def _retrying(self, step: Callable[[], object]) -> None:
        """Run ``step``, again while another process holds the file (two processes opening a new database
        at once: SQLite answers BUSY at once, without its busy handler, where waiting could deadlock), for up
        to the busy timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as exc:
                code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF  # the primary result code
                if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextlib.contextmanager
    def _write(self, doing: str, integrity: str = "") -> Iterator[sqlite3.Connection]:
        """One transaction, committed at the end of the block (rolled back if it raises); ``integrity`` is
        what a broken constraint means (an unknown run, a run recorded twice)."""
        with self._lock, self._guard(doing):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if integrity and isinstance(exc, sqlite3.IntegrityError):
                    raise RunStoreError(integrity, path=str(self.path)) from exc
                raise

    @contextlib.contextmanager
    def _read(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guard(doing):
            conn = self._connection()
            conn.execute("BEGIN")  # one consistent view for the statements of a read
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise RunStoreError(self._explain(exc, doing), path=str(self.path)) from exc
        except OSError as exc:  # the folder cannot be made
            raise RunStoreError(f"cannot {doing} in the run database {self.path}: {exc.strerror or exc}",
                                path=str(self.path)) from exc

    def _explain(self, exc: sqlite3.Error, doing: str) -> str:
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary result code
        if code in (11, 26):  # SQLITE_CORRUPT, SQLITE_NOTADB
            return (f"the run database {self.path} is corrupt ({exc}); move it aside and stagekit starts a new one "
                    "(the runs it recorded are lost; the stored objects are not)")
        why = {13: "the disk is full; it keeps every record written before (free some space)",  # SQLITE_FULL
               5: f"another process held it for more than {self.timeout:g} s",  # SQLITE_BUSY
               6: "it is locked",  # SQLITE_LOCKED
               8: "the file or its folder is read-only",  # SQLITE_READONLY
               14: f"the file cannot be opened ({exc})",  # SQLITE_CANTOPEN
               10: f"the file cannot be read or written ({exc})",  # SQLITE_IOERR
               }.get(code, str(exc))
        return f"cannot {doing} in the run database {self.path}: {why}"


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), sort_keys=True, default=_plain)


def _plain(value: object) -> object:
    """Params that JSON cannot hold, as something it can: paths and sets as such, anything else by repr."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


def _stage_run(r: Any) -> StageRun:
    return StageRun(stage=r[2], status=r[3], duration=r[5], fingerprint=r[4], params=json.loads(r[6]),
                    inputs=json.loads(r[7]), outputs=json.loads(r[8]), error=r[9], plugin=r[10], run_id=r[1],
                    id=r[0], recorded=r[11])


def _run_entry(row: Any) -> RunEntry:
    entry = RunEntry(*row)
    if entry.status == "running" and entry.host == _HOST and entry.pid is not None and not _alive(entry.pid):
        return attrs.evolve(entry, status="crashed")
    return entry


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


# --- recording a run as it goes -------------------------------------------------------------------------
