"""Stage logs under every executor: kept on each stage's record, tagged, shown by the real ``stagekit`` command.

The CLI tests run ``stagekit run`` in a subprocess (so that process workers are real and stderr is the
command's own) with a fixture plugin installed as a distribution on disk (a module and its ``*.dist-info``
put on PYTHONPATH; ``STAGEKIT_PLUGINS`` allows only it).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stagekit import Pipeline, SequentialExecutor, stage
from stagekit.run import logs
from stagekit.run.options import RunOptions
from stagekit.run.runner import run_dag

log = logging.getLogger("stage_logs_test")


def chatty(n: int = 2) -> int:
    log.debug("debug detail")
    log.info("info %d", n)
    log.warning("careful with %s", "this")
    return n


def failing() -> int:
    log.info("about to fail")
    raise ValueError("no")


def both(x: int) -> int:
    try:
        raise KeyError("inner")
    except KeyError:
        log.exception("caught it")
    return x


@pytest.fixture
def root_at(request: pytest.FixtureRequest) -> Iterator[None]:
    """The driver's root logger at ``request.param`` for the test (pytest's default leaves it at WARNING)."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(request.param)
    yield
    root.setLevel(before)


def messages(record: object) -> list[tuple[str, str, str]]:
    return [(e.level_name, e.logger, e.message) for e in record.logs]  # type: ignore[attr-defined]


@pytest.mark.parametrize("root_at", [logging.INFO], indirect=True)
def test_the_driver_level_decides_under_every_executor(root_at: None, executor: str) -> None:
    """By default records are kept from the driver's own level: here INFO, also in workers whose root is
    at WARNING."""
    result = Pipeline([stage(chatty, name="chatty", provides=["n"])]).run(executor=executor)
    assert messages(result.stages["chatty"]) == [
        ("INFO", "stage_logs_test", "info 2"), ("WARNING", "stage_logs_test", "careful with this")]
    assert result.summary()["stages"][0]["logs"][0] == {"level": "INFO", "logger": "stage_logs_test",
                                                        "message": "info 2"}


def test_pytest_default_root_keeps_warnings_only(executor: str) -> None:
    result = Pipeline([stage(chatty, name="chatty", provides=["n"])]).run(executor=executor)
    assert messages(result.stages["chatty"]) == [("WARNING", "stage_logs_test", "careful with this")]


def test_a_run_level_below_the_driver_creates_the_records_and_restores_the_level(
        caplog: pytest.LogCaptureFixture) -> None:
    root = logging.getLogger()
    assert root.level == logging.WARNING
    pipeline = Pipeline([stage(chatty, name="chatty", provides=["n"])])
    dag = pipeline.dag()
    result = run_dag(dag, {}, RunOptions(executor=SequentialExecutor(), merge=lambda b, v: v[-1],
                                         log_level="DEBUG"))
    assert [m for _, _, m in messages(result.stages["chatty"])] == ["debug detail", "info 2", "careful with this"]
    assert root.level == logging.WARNING
    # the stage's records reached the handlers there were, tagged
    tagged = [(r.stagekit_stage, r.getMessage()) for r in caplog.records if hasattr(r, "stagekit_stage")]
    assert ("chatty", "debug detail") in tagged


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_lowering_lets_only_stage_records_through_to_existing_handlers() -> None:
    """An app's root at WARNING with its handler: a run at INFO shows it the stages' INFO records, not the
    INFO records of code outside stages (a hook) that the lowering also let be created."""
    other = logging.getLogger("stage_logs_test.hook")

    def shout() -> int:
        other.info("from the stage")
        return 1

    class Hook:
        from stagekit import hookimpl

        @hookimpl
        def stagekit_before_stage(self, run: object, stage: object) -> None:
            other.info("from a hook, outside any stage")

    from stagekit import Host

    host = Host(plugins=[("hook", Hook())], autoload=False, env={})
    pipeline = Pipeline([stage(shout, name="shout", provides=["x"])], host=host)
    handler = ListHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        run_dag(pipeline.dag(), {}, RunOptions(executor=SequentialExecutor(), merge=lambda b, v: v[-1],
                                               hook=host.hook, log_level="INFO"))
    finally:
        root.removeHandler(handler)
    assert [r.getMessage() for r in handler.records] == ["from the stage"]
    assert handler.filters == [] and root.level == logging.WARNING  # all undone


def test_a_failing_stage_keeps_its_logs_and_tracebacks_travel(executor: str) -> None:
    from stagekit import StageError

    with pytest.raises(StageError) as err:
        Pipeline([stage(failing, name="failing", provides=["x"])]).run(executor=executor)
    assert err.value.result is not None
    assert messages(err.value.result.stages["failing"]) == []  # INFO is below the driver's WARNING here
    result = Pipeline([stage(both, name="both", requires=["x"], provides=["y"])]).run({"x": 1}, executor=executor)
    (entry,) = result.stages["both"].logs
    assert entry.level == logging.ERROR and "KeyError: 'inner'" in (entry.exc_text or "")


def test_parallel_thread_stages_do_not_mix_their_records() -> None:
    barrier = threading.Barrier(4, timeout=10)

    def talk(tag: str) -> str:
        barrier.wait()  # all four run at once
        for i in range(200):
            log.warning("%s %d", tag, i)
        return tag

    stages = [stage(talk, name=f"t{i}", provides=[f"o{i}"], params={"tag": f"t{i}"}) for i in range(4)]
    result = Pipeline(stages).run(executor="thread", workers=4)
    for i in range(4):
        got = [m for _, _, m in messages(result.stages[f"t{i}"])]
        assert got == [f"t{i} {k}" for k in range(200)]


def test_a_stage_that_logs_nothing_costs_no_list() -> None:
    result = Pipeline([stage(lambda: 1, name="quiet", provides=["x"])]).run()
    assert result.stages["quiet"].logs == ()


def test_worker_records_are_re_emitted_in_the_driver_tagged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        Pipeline([stage(chatty, name="chatty", provides=["n"])]).run(executor="process")
    (record,) = [r for r in caplog.records if r.getMessage() == "info 2"]
    assert record.stagekit_stage == "chatty" and record.name == "stage_logs_test"  # type: ignore[attr-defined]


def test_unknown_levels_are_refused() -> None:
    from stagekit import PipelineError

    assert logs.level_number("info") == logging.INFO and logs.level_number(5) == 5
    with pytest.raises(PipelineError, match="unknown log level 'LOUD'"):
        logs.level_number("LOUD")


# --- through the real CLI -------------------------------------------------------------------------------

PLUGIN = '''
import logging
import threading

from stagekit import hookimpl, stage

log = logging.getLogger("skt_logs.work")
barrier = threading.Barrier(2, timeout=10)


@stage(provides=["a"])
def first():
    log.debug("first: a detail")
    log.info("first: hello")
    return 1


@stage(requires=["a"], provides=["b"])
def left(a):
    if threading.current_thread().name.startswith("stagekit"):  # the thread executor: both at once
        barrier.wait()
    for i in range(50):
        log.info("left line %d", i)
    return a


@stage(requires=["a"], provides=["c"])
def right(a):
    if threading.current_thread().name.startswith("stagekit"):  # the thread executor: both at once
        barrier.wait()
    for i in range(50):
        log.info("right line %d", i)
    log.warning("right: careful")
    return a


@hookimpl
def stagekit_register_stages(register):
    for s in (first, left, right):
        register(s)
'''
LINE = re.compile(r"^\[(\w+)\] (DEBUG|INFO|WARNING|ERROR) skt_logs\.work: (.*)$")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stage-logs")
    site = root / "site"
    info = site / "skt_logs-0.1.0.dist-info"
    info.mkdir(parents=True)
    (site / "skt_logs.py").write_text(PLUGIN, encoding="utf-8")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: skt-logs\nVersion: 0.1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[stagekit]\nlogs = skt_logs\n", encoding="utf-8")
    (root / "pipeline.toml").write_text('[pipeline]\nstages = ["first", "left", "right"]\n', encoding="utf-8")
    return root


def stagekit(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGEKIT_")}
    env.update(PYTHONPATH=os.pathsep.join([str(project / "site"), env.get("PYTHONPATH", "")]),
               STAGEKIT_PLUGINS="logs")
    command = [sys.executable, "-c", "import sys; from stagekit.cli import main; sys.exit(main())", *args]
    proc = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def log_lines(stderr: str) -> list[tuple[str, str, str]]:
    found = []
    for line in stderr.splitlines():
        match = LINE.match(line)
        assert match, f"not a log line: {line!r}\n{stderr}"
        found.append((match[1], match[2], match[3]))
    return found


@pytest.mark.parametrize("executor", ["sequential", "thread", "process"])
def test_the_cli_shows_stage_logs_tagged_under_every_executor(project: Path, executor: str) -> None:
    lines = log_lines(stagekit(project, "run", "pipeline.toml", "--executor", executor, "--workers", "2").stderr)
    assert ("first", "INFO", "first: hello") in lines
    assert ("right", "WARNING", "right: careful") in lines
    assert all(message.startswith(tag) for tag, _, message in lines)  # each line tagged with its own stage
    assert [m for t, _, m in lines if t == "left"] == [f"left line {i}" for i in range(50)]
    assert not any(level == "DEBUG" for _, level, _ in lines)


def test_quiet_hides_info_and_log_level_debug_shows_more(project: Path) -> None:
    quiet = log_lines(stagekit(project, "--quiet", "run", "pipeline.toml", "--executor", "process").stderr)
    assert quiet == [("right", "WARNING", "right: careful")]
    debug = log_lines(stagekit(project, "--log-level", "debug", "run", "pipeline.toml",
                               "--executor", "process").stderr)
    assert ("first", "DEBUG", "first: a detail") in debug


def test_the_report_keeps_each_stages_lines(project: Path) -> None:
    stagekit(project, "run", "pipeline.toml", "--executor", "process", "--report", "report.html")
    page = (project / "report.html").read_text(encoding="utf-8")
    assert 'data-stage="right" open' in page  # a stage that warned is shown opened
    assert "INFO skt_logs.work: left line 49" in page and "WARNING skt_logs.work: right: careful" in page


def test_run_task_in_a_worker_lowers_its_root_once_and_leaves_no_stage_behind() -> None:
    """What a worker does: ``run_task`` with a level; afterwards that thread is outside any stage again."""
    code = """
import logging
from stagekit import Task, run_task, stage
from stagekit.run import logs

def talk():
    logging.getLogger("w").info("inside")

seen = []
class Keep(logging.Handler):
    def emit(self, record):
        seen.append((getattr(record, "stagekit_stage", None), record.getMessage()))

logging.getLogger().addHandler(Keep())
outcome = run_task(Task(stage(talk, name="talk", provides=[]), {}, None, logging.INFO))
logging.getLogger("w").info("outside")
print([e.message for e in outcome.logs], seen, logs.current.get(), logging.getLogger().level)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['inside'] [('talk', 'inside'), (None, 'outside')] None 20"


def test_pipeline_run_takes_the_log_level_and_refuses_an_unknown_one() -> None:
    import logging

    from stagekit import Pipeline, PipelineError, stage

    def chatty() -> int:
        logging.getLogger("chatty").debug("details")
        return 1

    p = Pipeline([stage(chatty, provides=["n"])])
    assert [e.message for e in p.run(log_level="DEBUG").stages["chatty"].logs] == ["details"]
    assert list(p.run(log_level=logging.INFO).stages["chatty"].logs) == []
    with pytest.raises(PipelineError):
        p.run(log_level="LOUD")
