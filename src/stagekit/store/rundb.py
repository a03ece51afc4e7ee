"""The run database: every run and every stage run, in SQLite in the workspace (``.stagekit/runs.sqlite``).

Standard library ``sqlite3`` in WAL mode: readers never wait for a writer; several processes can record runs
at once (each write one short ``BEGIN IMMEDIATE`` transaction, waiting for another up to a busy timeout);
``synchronous=NORMAL``: a power cut may lose the last records, never the database's consistency. Schema
version :data:`SCHEMA_VERSION` (a version-1 file is migrated when opened, a newer one refused): ``runs`` (id,
pipeline, start and end, status, snapshot, executor, stages planned, host and pid: a "running" run whose
process is gone from this host reads back as "crashed") and ``stage_runs`` (stage, status ok, failed,
cancelled or cached, fingerprint, duration, params, inputs: artifact -> fingerprint, outputs: artifact -> the
stored artifact or null, error, plugin, when recorded, why it ran, the seconds a cached one saved, the
fingerprint's parts; JSON columns read in SQL with ``json_each``). ``recorder.RunRecorder`` writes them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from stagekit.errors import RunStoreError

__all__ = ["DATABASE_NAME", "SCHEMA_VERSION", "RunDatabase", "RunEntry", "StageRun"]

DATABASE_NAME = "runs.sqlite"
SCHEMA_VERSION = 2
_V2_COLUMNS = ("reason TEXT", "saved REAL NOT NULL DEFAULT 0", "parts TEXT")  # version 1 gains them, last
_SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE, pipeline TEXT NOT NULL,
        started REAL NOT NULL, ended REAL, status TEXT NOT NULL, snapshot TEXT, executor TEXT,
        stages INTEGER, host TEXT NOT NULL, pid INTEGER NOT NULL)""",
    f"""CREATE TABLE stage_runs (
        id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        stage TEXT NOT NULL, status TEXT NOT NULL, fingerprint TEXT, duration REAL NOT NULL,
        params TEXT NOT NULL, inputs TEXT NOT NULL, outputs TEXT NOT NULL, error TEXT, plugin TEXT,
        recorded REAL NOT NULL, {', '.join(_V2_COLUMNS)})""",
    "CREATE INDEX stage_runs_of_run ON stage_runs (run_id)",
    "CREATE INDEX stage_runs_by_fingerprint ON stage_runs (stage, fingerprint) WHERE fingerprint IS NOT NULL",
    _BY_STAGE := "CREATE INDEX IF NOT EXISTS stage_runs_by_stage ON stage_runs (stage, id)",  # a stage's latest
)
_RUN_COLUMNS = "run_id, pipeline, started, ended, status, snapshot, executor, stages, host, pid"
_STAGE_COLUMNS = ("id, run_id, stage, status, fingerprint, duration, params, inputs, outputs, error, plugin, recorded, "
                  "reason, saved, parts")
_S_COLUMNS = ", ".join(f"s.{c}" for c in _STAGE_COLUMNS.split(", "))
_STORED = "json_each(s.outputs) o WHERE o.type = 'object' AND s.status IN ('ok', 'cached')"  # an artifact stored
_HOST = socket.gethostname()


@attrs.frozen
class StageRun:
    """One stage's run: ``status`` is ok, failed, cancelled or cached; ``inputs`` maps artifact names to their
    fingerprints, ``outputs`` to the stored artifact (``{"fingerprint", "object", "codec", "size"}``) or None;
    ``reason`` says why it ran, ``saved`` how many seconds a cached one saved; ``run_id``, ``id``, ``recorded``
    (Unix time) are filled in when read back."""

    stage: str
    status: str
    duration: float = 0.0
    fingerprint: str | None = None
    params: Mapping[str, Any] = attrs.field(factory=dict)
    inputs: Mapping[str, str | None] = attrs.field(factory=dict)
    outputs: Mapping[str, Mapping[str, Any] | None] = attrs.field(factory=dict)
    error: str | None = None
    plugin: str | None = None
    reason: str | None = None
    saved: float = 0.0
    parts: Mapping[str, Any] | None = None
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

    def __repr__(self) -> str: return f"{type(self).__name__}({str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None  # (a forked child's copy is dropped, never closed: it is the parent's)

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
                 _json(s.outputs), s.error, s.plugin, now, s.reason, float(s.saved),
                 None if s.parts is None else _json(s.parts)) for s in stage_runs]
        with self._write(f"record stage {what} of run {run_id!r}",
                         integrity=f"no run {run_id!r} in {self.path} (begin_run first)") as conn:
            conn.executemany(f"INSERT INTO stage_runs ({_STAGE_COLUMNS.partition(', ')[2]}) "
                             f"VALUES ({', '.join('?' * 14)})", rows)

    def end_run(self, run_id: str, status: str, *, ended: float | None = None) -> None:
        """Record how the run ended (ok, failed, interrupted) and when."""
        with self._write(f"record the end of run {run_id!r}") as conn:
            updated = conn.execute("UPDATE runs SET status = ?, ended = ? WHERE run_id = ?",
                                   (status, time.time() if ended is None else ended, run_id)).rowcount
            if not updated:
                raise RunStoreError(f"no run {run_id!r} in {self.path} (begin_run first)", path=str(self.path))

    def runs(self, limit: int | None = 20) -> list[RunEntry]:
        """The latest runs, newest first (all with ``limit=None``)."""
        return [_run_entry(r) for r in self._rows("list the runs", f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY seq DESC "
                                                  "LIMIT ?", (-1 if limit is None else limit,))]

    def run(self, run_id: str = "latest") -> RunEntry:
        """One run: by id, by a prefix that only it has, or "latest"."""
        with self._write(f"read run {run_id!r}", begin="BEGIN") as conn:  # one consistent view
            if run_id == "latest":
                rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY seq DESC LIMIT 1").fetchall()
            else:
                rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchall() or \
                    conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY seq DESC "
                                 "LIMIT 6", (len(run_id), run_id)).fetchall()
        if len(rows) == 1:
            return _run_entry(rows[0])
        if rows:
            raise RunStoreError(f"run id {run_id!r} is ambiguous in {self.path}: " + ", ".join(r[0] for r in rows[:5])
                                + ("..." if len(rows) > 5 else ""), path=str(self.path))
        raise RunStoreError(f"no run {run_id!r} in {self.path}" if run_id != "latest" else
                            f"no run is recorded in {self.path} yet", path=str(self.path))

    def stage_runs(self, run_id: str) -> list[StageRun]:
        """The stage runs of ``run_id``, in the order they were recorded."""
        return [_stage_run(r) for r in self._rows(f"read the stages of run {run_id!r}", f"SELECT {_STAGE_COLUMNS} "
                                                  "FROM stage_runs WHERE run_id = ? ORDER BY id", (run_id,))]

    def latest_stage_run(self, stage: str, fingerprint: str) -> StageRun | None:
        """The latest successful (ok or cached) run of ``stage`` with this fingerprint, if any: what a run can
        reuse (its params, inputs and parts are not read back: this is asked for every stage of a run)."""
        rows = self._rows(f"look up stage {stage!r}", "SELECT id, run_id, status, duration, outputs, plugin, recorded, "
                          "reason, saved FROM stage_runs WHERE stage = ? AND fingerprint = ? AND status IN ('ok', "
                          "'cached') ORDER BY id DESC LIMIT 1", (stage, fingerprint))
        if not rows:
            return None
        r = rows[0]
        return StageRun(stage, r[2], r[3], fingerprint, outputs=json.loads(r[4]), plugin=r[5], run_id=r[1], id=r[0],
                        recorded=r[6], reason=r[7], saved=r[8])

    def previous_stage_run(self, stage: str, pipeline: str | None = None) -> StageRun | None:
        """The latest ok or cached run of ``stage`` with ``parts`` (in runs of ``pipeline`` only, if given)."""
        rows = self._rows(f"look up the previous run of stage {stage!r}", f"SELECT {_S_COLUMNS} FROM stage_runs s "
                          "WHERE s.stage = ? AND s.parts IS NOT NULL AND s.status IN ('ok', 'cached') AND (? IS NULL "
                          "OR EXISTS (SELECT 1 FROM runs r WHERE r.run_id = s.run_id AND r.pipeline = ?)) "
                          "ORDER BY s.id DESC LIMIT 1", (stage, pipeline, pipeline))
        return _stage_run(rows[0]) if rows else None

    def recorded_stages(self) -> set[str]:  # asked once a run: a stage never recorded needs no lookup
        return {r[0] for r in self._rows("list the recorded stages", "SELECT DISTINCT stage FROM stage_runs")}

    def latest_output(self, artifact: str, run: str = "latest") -> tuple[StageRun, Mapping[str, Any]]:
        """The latest recorded ok or cached stage run that stored ``artifact`` in the newest run that stored it,
        or in ``run`` only (an id or a prefix only it has), and its ``outputs`` entry."""
        run_id = None if run == "latest" else self.run(run).run_id
        with self._write(f"look up the stored artifact {artifact!r}", begin="BEGIN") as conn:
            rows = conn.execute(f"SELECT {_S_COLUMNS}, o.value FROM runs r JOIN stage_runs s USING (run_id), {_STORED} "
                                "AND o.key = ? AND s.run_id = coalesce(?, s.run_id) AND r.status IN ('ok', 'failed', "
                                "'interrupted', 'running') ORDER BY r.seq DESC, s.id DESC LIMIT 1",
                                (artifact, run_id)).fetchall()
            if rows:
                return _stage_run(rows[0]), json.loads(rows[0][-1])
            last = run_id or next(iter(conn.execute("SELECT run_id FROM runs ORDER BY seq DESC LIMIT 1")), (None,))[0]
            stored = ", ".join(repr(r[0]) for r in conn.execute(f"SELECT DISTINCT o.key FROM stage_runs s, {_STORED} "
                                                                "AND s.run_id = ? ORDER BY o.key", (last,)))
        raise RunStoreError(f"no stored artifact {artifact!r} " + (f"in run {run_id}: it stored {stored or 'nothing'}"
                            if run_id else f"in any run: the latest, {last}, stored {stored or 'nothing'}" if last
                            else f"in any run: no run is recorded in {self.path} yet"), path=str(self.path))

    def referenced_objects(self, keep_last: int | None = None) -> set[str]:
        """The objects named in the outputs of all runs, or of the last ``keep_last`` and each left "running"
        (alive or not: a crashed one goes once :meth:`delete_runs` deletes it, out of the last ``keep_last``)."""
        if keep_last is not None and keep_last < 0:
            raise ValueError(f"keep_last must be 0 or more, not {keep_last}")
        rows = self._rows("list the objects the runs stored", "SELECT DISTINCT json_extract(o.value, '$.object') FROM "
                          "stage_runs s, json_each(s.outputs) o WHERE o.type = 'object' AND s.run_id IN (SELECT run_id "
                          "FROM runs WHERE status = 'running' OR seq IN (SELECT seq FROM runs ORDER BY seq DESC LIMIT "
                          "?))", (-1 if keep_last is None else keep_last,))  # LIMIT -1: all
        return {r[0] for r in rows if isinstance(r[0], str)}

    def running_since(self) -> float | None:
        """When the oldest run still running (its process alive) started; None if none is."""
        rows = self._rows("list the running runs", f"SELECT {_RUN_COLUMNS} FROM runs WHERE status = 'running'")
        return min((e.started for e in map(_run_entry, rows) if e.status == "running"), default=None)

    def delete_runs(self, keep_last: int) -> int:
        """Delete the runs older than the last ``keep_last`` (but one still running, its process alive), with
        their stage runs, in one transaction; returns how many runs were deleted."""
        if keep_last < 0:
            raise ValueError(f"keep_last must be 0 or more, not {keep_last}")
        with self._write(f"delete the runs before the last {keep_last}") as conn:
            rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY seq DESC LIMIT -1 OFFSET ?", (keep_last,))
            old = [(e.run_id,) for e in map(_run_entry, rows) if e.status != "running"]
            conn.executemany("DELETE FROM runs WHERE run_id = ?", old)  # stage_runs follow: ON DELETE CASCADE
        return len(old)

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
        """Create the schema in a new file, or migrate a version-1 one, in one transaction (another process
        opening it at once waits, then finds it done); refuse a newer schema, or a database that is not ours."""
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
            version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]  # in this transaction
            if version is None or version > SCHEMA_VERSION:
                raise RunStoreError(f"the run database {self.path} has schema version {version}, newer than this "
                                    f"stagekit knows ({SCHEMA_VERSION}): a newer stagekit wrote it; upgrade stagekit "
                                    "(pip install -U stagekit) or move the file aside", path=str(self.path))
            if version < SCHEMA_VERSION:  # 1 -> 2
                for column in _V2_COLUMNS:
                    conn.execute(f"ALTER TABLE stage_runs ADD COLUMN {column}")
                conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            conn.execute(_BY_STAGE)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _retrying(self, step: Callable[[], object]) -> object:
        """Run ``step``, again while another process holds the file, up to the busy timeout (two processes opening
        a database at once: SQLite answers BUSY at once, without its busy handler, where waiting could deadlock)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return step()
            except sqlite3.OperationalError as exc:
                code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF  # the primary result code
                if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextlib.contextmanager
    def _write(self, doing: str, integrity: str = "", begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction, committed at the end of the block (rolled back if it raises); ``integrity`` is what
        a broken constraint means (an unknown run, a run recorded twice). ``begin="BEGIN"``: a read."""
        with self._lock, self._guard(doing):
            conn = self._connection()
            conn.execute(begin)
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

    def _rows(self, doing: str, sql: str, args: Any = ()) -> list[Any]:
        with self._lock, self._guard(doing):  # one statement: consistent on its own, no transaction needed
            return self._connection().execute(sql, args).fetchall()

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
               5: f"another process held it for more than {self.timeout:g} s", 6: "it is locked",  # BUSY, LOCKED
               8: "the file or its folder is read-only", 14: f"the file cannot be opened ({exc})",  # READONLY, CANTOPEN
               10: f"the file cannot be read or written ({exc})"}.get(code, str(exc))  # SQLITE_IOERR
        return f"cannot {doing} in the run database {self.path}: {why}"


def _plain(value: object) -> object:
    """Values that JSON cannot hold, as something it can: mappings, paths and sets as such, others by repr."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return sorted(value, key=repr) if isinstance(value, set | frozenset) else repr(value)


_json = functools.partial(json.dumps, sort_keys=True, default=_plain)  # a mapping as JSON text


def _stage_run(r: Any) -> StageRun:
    return StageRun(stage=r[2], status=r[3], duration=r[5], fingerprint=r[4], params=json.loads(r[6]),
                    inputs=json.loads(r[7]), outputs=json.loads(r[8]), error=r[9], plugin=r[10], run_id=r[1],
                    id=r[0], recorded=r[11], reason=r[12], saved=r[13], parts=json.loads(r[14] or "null"))


def _run_entry(row: Any) -> RunEntry:
    entry = RunEntry(*row)
    if entry.status == "running" and entry.host == _HOST and entry.pid is not None:
        try:
            os.kill(entry.pid, 0)  # is its process alive?
        except ProcessLookupError:
            return attrs.evolve(entry, status="crashed")
        except PermissionError:  # someone else's process: alive
            pass
    return entry
