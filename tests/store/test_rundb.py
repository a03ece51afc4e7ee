"""The run database (issue 14, items 3 and 7): every run and stage run in a real SQLite file in the workspace,
written as the run goes, shared safely by concurrent writers (threads and processes), and failing clearly on
a newer schema, a corrupt file and a really full disk."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from stagekit import Host, Pipeline, RunStoreError, StageError, stage
from stagekit.store.recorder import RunRecorder
from stagekit.store.rundb import SCHEMA_VERSION, RunDatabase, StageRun

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
                                    inputs={}, outputs={"prices": "d1"}))
    db.record_stage(first, StageRun("fit", "failed", 0.25, params={}, inputs={"prices": "d1"},
                                    error="ValueError: bad"))
    db.end_run(first, "failed", ended=101.0)
    second = db.begin_run(pipeline="demo", snapshot="golden", started=200.0)
    db.record_stage(second, StageRun("load", "ok", 0.4, fingerprint="f1", outputs={"prices": "d2"}))
    assert [r.run_id for r in db.runs()] == [second, first] and [r.run_id for r in db.runs(1)] == [second]
    latest = db.run("latest")
    assert (latest.run_id, latest.status, latest.snapshot, latest.ended) == (second, "running", "golden", None)
    old = db.run("aaa")  # a prefix only it has
    assert (old.status, old.executor, old.stages, old.duration, old.pid) == ("failed", "thread", 2, 1.0, os.getpid())
    load, fit = db.stage_runs(first)
    assert (load.stage, load.status, load.duration, load.fingerprint) == ("load", "ok", 0.5, "f1")
    assert load.params == {"n": 3, "where": "/x"} and load.outputs == {"prices": "d1"} and load.run_id == first
    assert (fit.status, fit.error, fit.inputs, fit.fingerprint) == ("failed", "ValueError: bad", {"prices": "d1"}, None)
    found = db.latest_stage_run("load", "f1")
    assert found is not None and (found.run_id, found.outputs) == (second, {"prices": "d2"})
    assert db.latest_stage_run("fit", "f1") is None and db.latest_stage_run("load", "other") is None


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


# --- recording a real pipeline as it goes ------------------------------------------------------------------

SEEN: list[Any] = []


def first() -> int:
    return 1


def second(one: int, factor: int = 2) -> int:
    """Reads the database from another connection while this stage runs."""
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
    import os, signal, sys
    sys.path.insert(0, sys.argv[2])
    from stagekit import Host, Pipeline, stage
    from stagekit.store.recorder import RunRecorder
    from stagekit.store.rundb import RunDatabase

    def a():
        return 1

    def b(x):
        return x + 1

    def die(y):
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
                                             params={"i": i}, outputs={"out": f"d{i}"}))
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
            db.record_stage(run_id, StageRun(f"s{s}", "ok", 0.001, params={"i": i}, outputs={"out": "d"}))
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
    unshare = shutil.which("unshare")
    if unshare is None or sys.platform != "linux":
        pytest.skip("needs Linux unshare(1)")
    probe = subprocess.run([unshare, "-rm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"user and mount namespaces are not available: {probe.stderr.decode().strip()}")
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
