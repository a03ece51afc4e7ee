"""The run database (issue 14, items 3 and 7): every run and stage run in a real SQLite file in the workspace,
written as the run goes, shared safely by concurrent writers (threads and processes), and failing clearly on
a newer schema, a corrupt file and a really full disk. Schema version 2 (incremental runs): a version-1 file
migrated in place, why a stage ran and what it stored, and the reads and deletions the store's gc needs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from stagekit import Host, Pipeline, RunStoreError, StageError, stage
from stagekit.store.recorder import GROUP_SECONDS, RunRecorder
from stagekit.store.rundb import SCHEMA_VERSION, RunDatabase, StageRun
from store_tools import unshare_or_skip

SRC = str(Path(__file__).parents[2] / "src")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / ".stagekit" / "runs.sqlite"


def test_the_workspace_database_is_sqlite_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    db = RunDatabase.in_workspace(tmp_path)
    assert db.path == tmp_path.resolve() / ".stagekit" / "runs.sqlite" and db.path.is_file()
    raw = sqlite3.connect(db.path)
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert raw.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    raw.close()


def test_runs_and_stage_runs_read_back(db_path: Path) -> None:
    db = RunDatabase(db_path)
    first = db.begin_run("aaa111", pipeline="demo", executor="thread", stages=2, started=100.0)
    db.record_stage(first, StageRun("load", "ok", 0.5, fingerprint="f1", params={"n": 3, "where": Path("/x")},
                                    inputs={}, outputs={"prices": _stored("d1")}))
    db.record_stage(first, StageRun("fit", "failed", 0.25, params={}, inputs={"prices": "d1"},
                                    error="ValueError: bad"))
    db.end_run(first, "failed", ended=101.0)
    second = db.begin_run(pipeline="demo", snapshot="golden", started=200.0)
    db.record_stage(second, StageRun("load", "ok", 0.4, fingerprint="f1", outputs={"prices": _stored("d2")}))
    assert [r.run_id for r in db.runs()] == [second, first] and [r.run_id for r in db.runs(1)] == [second]
    latest = db.run("latest")
    assert (latest.run_id, latest.status, latest.snapshot, latest.ended) == (second, "running", "golden", None)
    old = db.run("aaa")  # a prefix only it has
    assert (old.status, old.executor, old.stages, old.duration, old.pid) == ("failed", "thread", 2, 1.0, os.getpid())
    load, fit = db.stage_runs(first)
    assert (load.stage, load.status, load.duration, load.fingerprint) == ("load", "ok", 0.5, "f1")
    assert load.params == {"n": 3, "where": "/x"} and load.outputs == {"prices": _stored("d1")} and load.run_id == first
    assert (load.reason, load.saved, load.parts) == (None, 0.0, None)
    assert (fit.status, fit.error, fit.inputs, fit.fingerprint) == ("failed", "ValueError: bad", {"prices": "d1"}, None)
    found = db.latest_stage_run("load", "f1")
    assert found is not None and (found.run_id, found.outputs) == (second, {"prices": _stored("d2")})
    assert db.latest_stage_run("fit", "f1") is None and db.latest_stage_run("load", "other") is None


def _stored(obj: str, fingerprint: str = "fp") -> dict[str, Any]:
    """An outputs entry as the run store writes it."""
    return {"fingerprint": fingerprint, "object": obj, "codec": "stagekit.json", "size": 12}


def test_the_version_2_fields_are_written_and_read_back_as_given(db_path: Path) -> None:
    db = RunDatabase(db_path)
    run_id = db.begin_run("r1", pipeline="p")
    parts = {"code": "c1", "params": {"top_n": "h20"}, "inputs": {"prices": "fp1"}, "version": None}
    ran = StageRun("pick", "ok", 1.5, fingerprint="f1", params={"top_n": 30}, inputs={"prices": "fp1", "raw": None},
                   outputs={"picked": _stored("o1"), "plot": None}, reason="param top_n 20 → 30", parts=parts)
    reused = StageRun("load", "cached", 0.01, fingerprint="f0", outputs={"prices": _stored("o0")},
                      reason="cached from run r0", saved=4.25, parts={"code": "c0"})
    db.record_stages(run_id, [ran, reused])
    pick, load = db.stage_runs(run_id)
    assert (pick.reason, pick.saved, pick.parts, pick.inputs) == ("param top_n 20 → 30", 0.0, parts,
                                                                  {"prices": "fp1", "raw": None})
    assert pick.outputs == {"picked": _stored("o1"), "plot": None}
    assert (load.status, load.reason, load.saved, load.parts) == ("cached", "cached from run r0", 4.25, {"code": "c0"})
    found = db.latest_stage_run("pick", "f1")  # what a run reuses: its outputs, not its params or parts
    assert found is not None and (found.reason, found.outputs, found.run_id) == (pick.reason, pick.outputs, "r1")
    previous = db.previous_stage_run("pick")  # what a reason compares with: the parts
    assert previous is not None and previous.parts == parts


def test_unknown_and_duplicate_runs_are_named(db_path: Path) -> None:
    db = RunDatabase(db_path)
    with pytest.raises(RunStoreError, match=f"no run is recorded in {db_path} yet"):
        db.run()
    db.begin_run("abc1", pipeline="p")
    db.begin_run("abc2", pipeline="p")
    with pytest.raises(RunStoreError, match="run id 'abc' is ambiguous in .*: abc2, abc1"):
        db.run("abc")
    with pytest.raises(RunStoreError, match=r"no run 'zzz' in .* \(begin_run first\)"):
        db.record_stage("zzz", StageRun("s", "ok"))
    with pytest.raises(RunStoreError, match="run 'abc1' is already recorded"):
        db.begin_run("abc1", pipeline="p")
    assert db.stage_runs("zzz") == []


# --- the reads incremental runs and the store's gc use ----------------------------------------------------

GONE_PID = 2**22 + 1  # above any pid_max (Linux allows at most 2**22): no process has it


def _set(path: Path, sql: str, *args: object) -> None:
    """Change rows behind the database's back, as another stagekit (or a crash) would have left them."""
    raw = sqlite3.connect(path)
    raw.execute(sql, args)
    raw.commit()
    raw.close()


def test_previous_stage_run_is_the_latest_successful_one_with_parts(db_path: Path) -> None:
    db = RunDatabase(db_path)
    assert db.previous_stage_run("fit") is None
    a = db.begin_run("a", pipeline="daily")
    db.record_stage(a, StageRun("fit", "ok", 1.0, fingerprint="f1", parts={"code": "c1"}))
    b = db.begin_run("b", pipeline="weekly")
    db.record_stage(b, StageRun("fit", "cached", 0.0, fingerprint="f2", parts={"code": "c2"}))
    c = db.begin_run("c", pipeline="daily")
    db.record_stages(c, [StageRun("fit", "failed", 0.1, parts={"code": "c3"}),  # failed: not what it was
                         StageRun("fit", "ok", 0.2, fingerprint="f4"),  # no parts: nothing to compare with
                         StageRun("other", "ok", 0.2, parts={"code": "x"})])
    latest, daily = db.previous_stage_run("fit"), db.previous_stage_run("fit", "daily")
    assert latest is not None and (latest.run_id, latest.status, latest.parts) == ("b", "cached", {"code": "c2"})
    assert daily is not None and (daily.run_id, daily.parts) == ("a", {"code": "c1"})
    assert db.previous_stage_run("fit", "monthly") is None


def test_latest_output_is_the_newest_stored_one(db_path: Path) -> None:
    db = RunDatabase(db_path)
    with pytest.raises(RunStoreError, match="no stored artifact 'features' in any run: no run is recorded in"):
        db.latest_output("features")
    old = db.begin_run("old111", pipeline="p")
    db.record_stages(old, [StageRun("feat", "ok", outputs={"features": _stored("o1"), "prices": _stored("o2")}),
                           StageRun("feat", "ok", outputs={"features": _stored("o3")})])  # later in the same run
    db.end_run(old, "ok")
    new = db.begin_run("new222", pipeline="p")
    db.record_stages(new, [StageRun("feat", "cached", outputs={"features": _stored("o4")}),
                           StageRun("feat", "failed", outputs={"features": _stored("o5")}),  # failed: not stored
                           StageRun("plot", "ok", outputs={"plot": None, "prices": None})])  # None: not stored
    db.end_run(new, "interrupted")
    stage_run, entry = db.latest_output("features")
    assert (stage_run.run_id, stage_run.status, entry) == ("new222", "cached", _stored("o4"))
    assert db.latest_output("features", "old")[1] == _stored("o3")  # a prefix; the latest recorded in that run
    assert db.latest_output("prices")[1] == _stored("o2")  # the newest run that stored it, not the newest run
    latest, entry = db.latest_output("prices", "latest")
    assert latest.run_id == "old111" and entry["object"] == "o2"
    with pytest.raises(RunStoreError) as err:
        db.latest_output("featurs", "old111")
    assert str(err.value) == "no stored artifact 'featurs' in run old111: it stored 'features', 'prices'"
    assert err.value.path == str(db_path)
    with pytest.raises(RunStoreError, match=r"^no stored artifact 'plot' in any run: the latest, new222, stored "
                                            r"'features'$"):
        db.latest_output("plot")
    with pytest.raises(RunStoreError, match="^no stored artifact 'plot' in run new222: it stored 'features'$"):
        db.latest_output("plot", "new")
    db.begin_run("new333", pipeline="p")  # stored nothing yet
    with pytest.raises(RunStoreError, match="in run new333: it stored nothing$"):
        db.latest_output("features", "new333")
    assert db.latest_output("features")[0].run_id == "new222"  # a running run that stored nothing: the one before
    with pytest.raises(RunStoreError, match="run id 'new' is ambiguous in .*: new333, new222"):
        db.latest_output("features", "new")
    with pytest.raises(RunStoreError, match="no run 'zzz' in "):
        db.latest_output("features", "zzz")


def test_latest_output_counts_running_and_crashed_runs(db_path: Path) -> None:
    db = RunDatabase(db_path)
    db.begin_run("done", pipeline="p")
    db.record_stage("done", StageRun("s", "ok", outputs={"a": _stored("o1")}))
    db.end_run("done", "failed")
    db.begin_run("crashed", pipeline="p")
    db.record_stage("crashed", StageRun("s", "ok", outputs={"a": _stored("o2")}))
    _set(db_path, "UPDATE runs SET pid = ? WHERE run_id = 'crashed'", GONE_PID)
    assert db.run("crashed").status == "crashed"
    assert db.latest_output("a")[1]["object"] == "o2"


def _four_runs(db: RunDatabase, path: Path) -> None:
    """r1 (ok), r2 (crashed: left "running" by a pid that is gone), r3 (still running: this process), r4 (ok)."""
    for n, status in enumerate(["ok", "running", "running", "ok"], start=1):
        run_id = db.begin_run(f"r{n}", pipeline="p", started=100.0 * n)
        db.record_stages(run_id, [StageRun("load", "ok", outputs={"prices": _stored(f"o{n}"), "skip": None}),
                                  StageRun("fit", "failed", outputs={"model": _stored(f"m{n}")})])
        if status == "ok":
            db.end_run(run_id, "ok", ended=100.0 * n + 1)
    _set(path, "UPDATE runs SET pid = ? WHERE run_id = 'r2'", GONE_PID)


def test_referenced_objects_keep_the_last_runs_and_every_running_one(db_path: Path) -> None:
    db = RunDatabase(db_path)
    assert db.referenced_objects() == set() and db.referenced_objects(3) == set()
    _four_runs(db, db_path)
    db.record_stage("r1", StageRun("old", "ok", outputs={"v1": "a digest, as version 1 wrote", "n": None}))
    assert [r.status for r in db.runs()] == ["ok", "running", "crashed", "ok"]
    every = {"o1", "m1", "o2", "m2", "o3", "m3", "o4", "m4"}  # a failed stage's objects too: they are in the store
    assert db.referenced_objects() == every == db.referenced_objects(4) == db.referenced_objects(10)
    assert db.referenced_objects(1) == {"o2", "m2", "o3", "m3", "o4", "m4"}  # r2, r3: left "running"
    assert db.referenced_objects(0) == {"o2", "m2", "o3", "m3"}
    with pytest.raises(ValueError, match="keep_last must be 0 or more, not -1"):
        db.referenced_objects(-1)


def test_running_since_is_the_oldest_run_still_alive(db_path: Path) -> None:
    db = RunDatabase(db_path)
    assert db.running_since() is None
    _four_runs(db, db_path)
    assert db.running_since() == 300.0  # r2 (started 200) is crashed: its process is gone
    db.begin_run("r5", pipeline="p", started=50.0)
    assert db.running_since() == 50.0
    db.end_run("r5", "ok")
    db.end_run("r3", "interrupted")
    assert db.running_since() is None


def test_delete_runs_keeps_the_last_and_the_running_and_cascades(db_path: Path) -> None:
    db = RunDatabase(db_path)
    assert db.delete_runs(5) == 0
    _four_runs(db, db_path)
    with pytest.raises(ValueError, match="keep_last must be 0 or more, not -2"):
        db.delete_runs(-2)
    assert db.delete_runs(4) == 0 and db.delete_runs(10) == 0
    assert db.delete_runs(1) == 2  # r1 (old) and r2 (crashed); r3 runs on, r4 is the last
    assert [r.run_id for r in db.runs()] == ["r4", "r3"]
    assert db.stage_runs("r1") == [] and db.stage_runs("r2") == []
    raw = sqlite3.connect(db_path)
    assert raw.execute("SELECT DISTINCT run_id FROM stage_runs ORDER BY run_id").fetchall() == [("r3",), ("r4",)]
    raw.close()
    assert db.referenced_objects(1) == {"o3", "m3", "o4", "m4"}  # r2's objects went with it
    assert db.delete_runs(0) == 1 and [r.run_id for r in db.runs()] == ["r3"]  # running: kept even with 0
    db.end_run("r3", "ok")
    assert db.delete_runs(0) == 1 and db.runs() == [] and db.referenced_objects() == set()
    db.close()
    assert RunDatabase(db_path).runs() == []  # each connection deletes with foreign keys on


# --- migrating a version-1 file ----------------------------------------------------------------------------

V1_SCHEMA = (  # exactly what version 1 created
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


def _version_1_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = sqlite3.connect(path)
    for statement in V1_SCHEMA:
        raw.execute(statement)
    raw.execute("INSERT INTO schema_version VALUES (1)")
    raw.execute("INSERT INTO runs (run_id, pipeline, started, ended, status, snapshot, executor, stages, host, pid) "
                "VALUES ('v1run', 'demo', 10.0, 12.5, 'ok', NULL, 'thread', 1, 'elsewhere', 4242)")
    raw.execute("INSERT INTO stage_runs (run_id, stage, status, fingerprint, duration, params, inputs, outputs, "
                "error, plugin, recorded) VALUES ('v1run', 'load', 'ok', 'f1', 2.5, ?, '{}', ?, NULL, 'myplugin', 12)",
                ('{"n": 3}', '{"prices": null}'))
    raw.commit()
    raw.execute("PRAGMA journal_mode = WAL")  # as version 1 left it
    raw.close()


def _columns(path: Path) -> list[str]:
    raw = sqlite3.connect(path)
    names = [r[1] for r in raw.execute("PRAGMA table_info(stage_runs)")]
    raw.close()
    return names


def test_a_version_1_file_is_migrated_in_place(db_path: Path) -> None:
    _version_1_file(db_path)
    db = RunDatabase(db_path)
    raw = sqlite3.connect(db_path)
    assert raw.execute("SELECT version FROM schema_version").fetchall() == [(2,)] and SCHEMA_VERSION == 2
    raw.close()
    assert _columns(db_path)[-3:] == ["reason", "saved", "parts"]
    run = db.run("v1run")
    assert (run.pipeline, run.status, run.duration, run.host, run.pid) == ("demo", "ok", 2.5, "elsewhere", 4242)
    (load,) = db.stage_runs("v1run")
    assert (load.stage, load.status, load.fingerprint, load.duration, load.params, load.outputs, load.plugin,
            load.recorded) == ("load", "ok", "f1", 2.5, {"n": 3}, {"prices": None}, "myplugin", 12.0)
    assert (load.reason, load.saved, load.parts) == (None, 0.0, None)  # the new columns' defaults
    assert db.previous_stage_run("load") is None and db.referenced_objects() == set()
    db.record_stage("v1run", StageRun("fit", "ok", 1.0, outputs={"model": _stored("o1")}, reason="no earlier run",
                                      parts={"code": "c"}))
    fit = db.stage_runs("v1run")[1]
    assert (fit.reason, fit.parts, db.latest_output("model")[1]) == ("no earlier run", {"code": "c"}, _stored("o1"))
    db.close()
    assert RunDatabase(db_path).stage_runs("v1run")[1] == fit  # opened again: nothing to migrate
    assert _columns(db_path).count("reason") == 1


MIGRATE = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[4])
    from stagekit.store.rundb import RunDatabase, StageRun
    while time.time() < float(sys.argv[3]):  # open together
        time.sleep(0.001)
    db = RunDatabase(sys.argv[1])
    run_id = db.begin_run(sys.argv[2], pipeline="p")
    db.record_stage(run_id, StageRun("s", "ok", reason="why " + sys.argv[2], parts={"code": sys.argv[2]}))
    db.end_run(run_id, "ok")
""")


def test_processes_opening_a_version_1_file_at_once_all_migrate_it(db_path: Path) -> None:
    import time

    _version_1_file(db_path)
    start = str(time.time() + 1.0)
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, str(db_path), f"m{n}", start, SRC],
                              stderr=subprocess.PIPE, text=True) for n in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert _columns(db_path).count("parts") == 1
    db = RunDatabase(db_path)
    assert sorted(r.run_id for r in db.runs()) == ["m0", "m1", "m2", "m3", "v1run"]
    assert {db.stage_runs(f"m{n}")[0].reason for n in range(4)} == {f"why m{n}" for n in range(4)}
    raw = sqlite3.connect(db_path)
    assert raw.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    raw.close()


# --- recording a real pipeline as it goes ------------------------------------------------------------------

SEEN: list[Any] = []


def first() -> int:
    return 1


def second(one: int, factor: int = 2) -> int:
    """Reads the database from another connection while this stage runs (once the recorder's grouping of
    commits has let the first stage's record through)."""
    time.sleep(GROUP_SECONDS * 4)
    other = RunDatabase(SEEN[0])
    latest = other.run("latest")
    SEEN.append((latest.status, [(s.stage, s.status) for s in other.stage_runs(latest.run_id)]))
    other.close()
    return one * factor


def boom(two: int) -> int:
    raise ValueError("the data is bad")


def never(three: int) -> int:
    return three


STAGES = [stage(first, provides=["one"]), stage(second, requires=["one"], provides=["two"], params={"factor": 2})]


@pytest.mark.parametrize("executor", ["sequential", "thread"])
def test_records_are_written_as_the_run_goes(db_path: Path, executor: str) -> None:
    db = RunDatabase(db_path)
    SEEN[:] = [db_path]
    recorder = RunRecorder(db, "demo", params={"second": {"factor": 5}})
    result = Pipeline(STAGES, host=Host.isolated(recorder)).run(executor=executor, params={"second": {"factor": 5}})
    assert result.artifacts["two"] == 5
    assert SEEN[1] == ("running", [("first", "ok")])  # seen from another connection, mid-run
    run = db.run()
    assert (run.run_id, run.pipeline, run.status, run.executor, run.stages) == (result.run_id, "demo", "ok",
                                                                                 executor, 2)
    assert run.ended is not None and run.ended >= run.started
    recorded = db.stage_runs(run.run_id)
    assert [(s.stage, s.status) for s in recorded] == [("first", "ok"), ("second", "ok")]
    assert recorded[1].params == {"factor": 5} and recorded[1].inputs == {"one": None}
    assert recorded[1].outputs == {"two": None} and recorded[1].duration == result.stages["second"].duration


def test_a_failed_run_records_the_failure_and_the_stages_that_never_ran(db_path: Path) -> None:
    db = RunDatabase(db_path)
    stages = [*STAGES, stage(boom, requires=["two"], provides=["three"]), stage(never, requires=["three"])]
    SEEN[:] = [db_path]
    with pytest.raises(StageError):
        Pipeline(stages, host=Host.isolated(RunRecorder(db, "demo"))).run()
    run = db.run()
    assert run.status == "failed" and run.ended is not None
    recorded = {s.stage: s for s in db.stage_runs(run.run_id)}
    assert {n: s.status for n, s in recorded.items()} == {"first": "ok", "second": "ok", "boom": "failed",
                                                          "never": "cancelled"}
    assert recorded["boom"].error == "ValueError: the data is bad"


CRASH = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, sys.argv[2])
    from stagekit import Host, Pipeline, stage
    from stagekit.store.recorder import GROUP_SECONDS, RunRecorder
    from stagekit.store.rundb import RunDatabase

    def a():
        return 1

    def b(x):
        return x + 1

    def die(y):
        time.sleep(GROUP_SECONDS * 4)  # records are committed in groups, within GROUP_SECONDS
        os.kill(os.getpid(), signal.SIGKILL)

    stages = [stage(a, provides=["x"]), stage(b, requires=["x"], provides=["y"]), stage(die, requires=["y"])]
    Pipeline(stages, host=Host.isolated(RunRecorder(RunDatabase(sys.argv[1]), "crashing"))).run()
""")


def test_a_crash_keeps_what_finished(db_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", CRASH, str(db_path), SRC], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == -9, proc.stderr
    db = RunDatabase(db_path)
    run = db.run()
    assert (run.pipeline, run.status, run.ended) == ("crashing", "crashed", None)  # its process is gone
    assert [(s.stage, s.status) for s in db.stage_runs(run.run_id)] == [("a", "ok"), ("b", "ok")]


# --- concurrent writers ------------------------------------------------------------------------------------


def _write_runs(db: RunDatabase, label: str, runs: int, stages: int) -> None:
    for i in range(runs):
        run_id = db.begin_run(f"{label}-{i}", pipeline=label)
        for s in range(stages):
            db.record_stage(run_id, StageRun(f"s{s}", "ok", 0.001, fingerprint=f"{label}-{i}-{s}",
                                             params={"i": i}, outputs={"out": {"object": f"d{i}"}}))
        db.end_run(run_id, "ok")


def _check_complete(path: Path, labels: list[str], runs: int, stages: int) -> None:
    db = RunDatabase(path)
    every = db.runs(limit=None)
    assert sorted(r.run_id for r in every) == sorted(f"{lb}-{i}" for lb in labels for i in range(runs))
    assert {r.status for r in every} == {"ok"}
    for r in every:
        assert [s.stage for s in db.stage_runs(r.run_id)] == [f"s{s}" for s in range(stages)], r.run_id
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    raw.close()


def test_threads_writing_at_once_lose_nothing(db_path: Path) -> None:
    shared = RunDatabase(db_path)
    errors: list[BaseException] = []

    def work(label: str, own: bool) -> None:
        try:
            _write_runs(RunDatabase(db_path) if own else shared, label, 30, 4)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{n}", n < 4)) for n in range(6)]  # 4 own, 2 sharing one
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _check_complete(db_path, [f"t{n}" for n in range(6)], 30, 4)


WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[4])
    from stagekit.store.rundb import RunDatabase, StageRun
    while time.time() < float(sys.argv[3]):  # start together
        time.sleep(0.001)
    db = RunDatabase(sys.argv[1])
    label = sys.argv[2]
    for i in range(60):
        run_id = db.begin_run(f"{label}-{i}", pipeline=label)
        for s in range(4):
            db.record_stage(run_id, StageRun(f"s{s}", "ok", 0.001, params={"i": i}, outputs={"out": {"object": "d"}}))
        db.end_run(run_id, "ok")
""")


def test_two_processes_writing_at_once_lose_nothing(db_path: Path) -> None:
    import time

    start = str(time.time() + 1.0)  # both create the new database at the same moment, then write
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db_path), label, start, SRC],
                              stderr=subprocess.PIPE, text=True) for label in ("p1", "p2")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    _check_complete(db_path, ["p1", "p2"], 60, 4)


# --- bad files ---------------------------------------------------------------------------------------------


def test_a_newer_schema_is_refused_and_left_alone(db_path: Path) -> None:
    db = RunDatabase(db_path)
    db.begin_run("r1", pipeline="p")
    db.close()
    raw = sqlite3.connect(db_path)
    raw.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    raw.commit()
    raw.close()
    with pytest.raises(RunStoreError) as err:
        RunDatabase(db_path)
    assert str(err.value) == (
        f"the run database {db_path} has schema version {SCHEMA_VERSION + 1}, newer than this stagekit knows "
        f"({SCHEMA_VERSION}): a newer stagekit wrote it; upgrade stagekit (pip install -U stagekit) or move the "
        "file aside")
    assert err.value.path == str(db_path)
    raw = sqlite3.connect(db_path)
    assert raw.execute("SELECT run_id FROM runs").fetchall() == [("r1",)]
    raw.close()


def test_a_file_that_is_not_a_database_is_named_as_corrupt(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(os.urandom(8192))
    with pytest.raises(RunStoreError) as err:
        RunDatabase(db_path)
    assert str(err.value).startswith(f"the run database {db_path} is corrupt (file is not a database); move it "
                                     "aside and stagekit starts a new one")
    assert err.value.path == str(db_path)


def test_damaged_pages_are_named_as_corrupt(db_path: Path) -> None:
    db = RunDatabase(db_path)
    _write_runs(db, "r", 40, 5)
    db.close()  # the last connection checkpoints the WAL into the file
    with open(db_path, "r+b") as f:
        f.seek(4096 * 2)
        f.write(os.urandom(4096 * 6))
    with pytest.raises(RunStoreError, match=f"the run database {db_path} is corrupt") as err:
        db = RunDatabase(db_path)
        for run in db.runs(limit=None):
            db.stage_runs(run.run_id)
    assert err.value.path == str(db_path)


def test_another_sqlite_database_is_not_taken_for_a_run_database(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TABLE notes (text TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(RunStoreError, match="is an SQLite database, but not stagekit's run database"):
        RunDatabase(db_path)


# --- a really full disk ------------------------------------------------------------------------------------

FULL = textwrap.dedent("""
    import json, os, sqlite3, subprocess, sys
    mnt = sys.argv[1]
    sys.path.insert(0, sys.argv[2])
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mnt], check=True)
    from stagekit import Host, Pipeline, RunStoreError, StagekitError, stage
    from stagekit.store.recorder import RunRecorder
    from stagekit.store.rundb import RunDatabase, StageRun

    path = os.path.join(mnt, ".stagekit", "runs.sqlite")
    db = RunDatabase(path)
    run_id = db.begin_run("before", pipeline="p")
    for n in range(3):
        db.record_stage(run_id, StageRun(f"s{n}", "ok", 0.1))
    with open(os.path.join(mnt, "filler"), "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"0" * 4096)
        except OSError:
            pass
    out = {}
    try:
        db.record_stage(run_id, StageRun("big", "ok", 0.1, params={"blob": "x" * 300_000}))
        out["write"] = "ok"
    except RunStoreError as exc:
        out["write"] = str(exc)
    out["kept"] = [s.stage for s in db.stage_runs(run_id)]

    def make(blob):
        return 1

    big = stage(make, provides=["v"], params={"blob": "y" * 300_000})
    try:
        Pipeline([big], host=Host.isolated(RunRecorder(db, "full"))).run()
        out["run"] = "no error"
    except StagekitError as exc:  # the RunStoreError itself, or a HookError naming the recorder that raised it
        store_error = exc if isinstance(exc, RunStoreError) else getattr(exc, "original", None)
        out["run"] = str(store_error) if isinstance(store_error, RunStoreError) else repr(exc)
        out["result"] = exc.result.artifacts["v"] if exc.result is not None else None
    out["integrity"] = sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0]
    os.unlink(os.path.join(mnt, "filler"))
    db.record_stage(run_id, StageRun("after", "ok", 0.1, params={"blob": "x" * 300_000}))
    db.end_run(run_id, "ok")
    out["after"] = [s.stage for s in db.stage_runs(run_id)]
    out["path"] = path
    print(json.dumps(out))
""")


def test_a_full_disk_fails_the_write_clearly_and_keeps_the_database_consistent(tmp_path: Path) -> None:
    unshare = unshare_or_skip()
    (tmp_path / "mnt").mkdir()
    proc = subprocess.run([unshare, "-rm", sys.executable, "-c", FULL, str(tmp_path / "mnt"), SRC],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    path = out["path"]
    assert out["write"] == (f"cannot record stage 'big' of run 'before' in the run database {path}: the disk is "
                            "full; it keeps every record written before (free some space)")
    assert out["kept"] == ["s0", "s1", "s2"]
    # a run whose records cannot be written runs to its end; the error comes then, with the run's result
    assert "in the run database" in out["run"] and "the disk is full" in out["run"] and out["result"] == 1
    assert out["integrity"] == "ok"
    assert out["after"] == ["s0", "s1", "s2", "after"]  # space freed: recording goes on
