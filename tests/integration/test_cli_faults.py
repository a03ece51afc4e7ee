"""Issue 13 through the real ``stagekit run``, in a subprocess: whatever plugin code does (``sys.exit`` in a
stage or a hook, a merge that raises, a stage that never ends), the command prints one or two lines naming
who is at fault, exits non-zero and ends in bounded time; Ctrl-C says which stages finished; SIGTERM ends
every process the run started. The plugin is a distribution in a tmp directory on PYTHONPATH (as in
tests/cli/test_cli.py), so no venv is built: these tests are fast."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

PLUGIN = '''\
"""Stages and hooks that fail in every way plugin code can."""

import os
import sys
import time
from pathlib import Path

import attrs

from stagekit import hookimpl, stage


def mark(name):
    folder = os.environ.get("FAULTFIX_MARKS")
    if folder:
        Path(folder, name).write_text(str(os.getpid()))


@attrs.frozen
class Box:
    items: tuple = ()


@stage(provides=["x"])
def bye():
    sys.exit(3)


@stage(provides=["first"])
def first():
    mark("first")
    return 1


@stage(requires=["first"], provides=["stuck"])
def stuck(first):
    mark("stuck")
    time.sleep(60)
    return 2


@stage(provides=["box"], types={"box": Box})
def make_box():
    return Box((0,))


@stage(requires=["box"], provides=["box"])
def left(box):
    return Box(box.items + (1,))


@stage(requires=["box"], provides=["box"])
def right(box):
    time.sleep(0.3)
    return Box(box.items + (2,))


@stage(requires=["box"], provides=["done"])
def read(box):
    return len(box.items)


@stage(provides=["late"], after=["left"])
def slowpoke():
    time.sleep(60)
    return 1


def broken_merge(base, branches):
    raise RuntimeError("the merge is broken")


@hookimpl
def stagekit_register_stages(register):
    for s in (bye, first, stuck, make_box, left, right, read, slowpoke):
        register(s)


@hookimpl
def stagekit_register_merges(register):
    register(Box, broken_merge)


@hookimpl
def stagekit_before_run(run):
    if os.environ.get("FAULTFIX_EXIT_BEFORE_RUN"):
        sys.exit(4)


@hookimpl
def stagekit_after_run(run, result):
    if os.environ.get("FAULTFIX_FAIL_AFTER_RUN"):
        raise RuntimeError("the report server is down")
'''
ORIGIN = "plugin 'faultfix' (distribution skt-fault-fixture 0.1.0)"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    info = site / "skt_fault_fixture-0.1.0.dist-info"
    info.mkdir(parents=True)
    (site / "skt_fault_fixture.py").write_text(PLUGIN, encoding="utf-8")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: skt-fault-fixture\nVersion: 0.1.0\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text("[stagekit]\nfaultfix = skt_fault_fixture\n", encoding="utf-8")
    (tmp_path / "marks").mkdir()
    return tmp_path


def env(project: Path, **extra: str) -> dict[str, str]:
    found = {k: v for k, v in os.environ.items() if not k.startswith(("STAGEKIT_", "FAULTFIX_"))}
    path = os.pathsep.join(filter(None, [str(project / "site"), os.environ.get("PYTHONPATH")]))
    return {**found, "PYTHONPATH": path, "STAGEKIT_PLUGINS": "faultfix", "STAGEKIT_CANCEL_GRACE": "0.5",
            "FAULTFIX_MARKS": str(project / "marks"), **extra}


def pipeline(project: Path, stages: list[str], executor: str, extra: str = "") -> Path:
    path = project / "pipeline.toml"
    path.write_text(f'[pipeline]\nstages = {stages!r}\nexecutor = "{executor}"\nworkers = 3\n{extra}'
                    .replace("'", '"'), encoding="utf-8")
    return path


def stagekit(project: Path, *args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stagekit.cli", *args], capture_output=True, text=True,
                          cwd=project, env=env(project, **extra), timeout=timeout)


def test_a_stage_that_calls_sys_exit_is_one_line_and_exit_1(project: Path, executor: str) -> None:
    done = stagekit(project, "run", str(pipeline(project, ["first", "bye"], executor)))
    assert done.returncode == 1, done.stderr
    assert f"stagekit: error: stage 'bye' [{ORIGIN}] failed: SystemExit: 3" in done.stderr
    assert "raised at" in done.stderr and "Traceback" not in done.stderr


def test_a_merge_that_raises_is_one_line_and_the_run_ends(project: Path, executor: str) -> None:
    stages = ["make_box", "left", "right", "read"] + ([] if executor == "sequential" else ["slowpoke"])
    start = time.perf_counter()
    done = stagekit(project, "run", str(pipeline(project, stages, executor)), "--json")
    assert time.perf_counter() - start < 30  # the still running slowpoke does not keep the command alive
    assert done.returncode == 1, done.stderr
    assert "merging artifact 'box' where branches join at 'read' (changed by 'left', 'right')" in done.stderr
    assert "registered by plugin 'faultfix'" in done.stderr and "RuntimeError: the merge is broken" in done.stderr
    assert "Traceback" not in done.stderr
    assert '"name": "left"' in done.stdout and '"status": "ok"' in done.stdout  # the partial result, kept


def test_the_run_timeout_from_the_command_line(project: Path, executor: str) -> None:
    done = stagekit(project, "run", str(pipeline(project, ["first", "stuck"], executor)), "--timeout", "1.5")
    assert done.returncode == 1, done.stderr
    assert (f"stagekit: error: stage 'stuck' [{ORIGIN}] was still running when the run timed out after 1.5 s "
            "(the run's timeout)") in done.stderr


def test_stage_timeouts_from_the_pipeline_file(project: Path) -> None:
    done = stagekit(project, "run", str(pipeline(project, ["first", "stuck"], "thread",
                                                 "\n[timeouts]\nstuck = 0.5\n")))
    assert done.returncode == 1, done.stderr
    assert f"stage 'stuck' [{ORIGIN}] timed out after 0.5 s (its timeout)" in done.stderr
    bad = stagekit(project, "run", str(pipeline(project, ["first", "stuck"], "thread", "\n[timeouts]\nstuk = -1\n")))
    assert bad.returncode == 1 and "unknown stage 'stuk' (did you mean 'stuck'?) in the per-stage timeouts" \
        in bad.stderr and "nothing was run" in bad.stderr


def test_a_hook_that_calls_sys_exit_is_named(project: Path) -> None:
    done = stagekit(project, "run", str(pipeline(project, ["first"], "thread")), FAULTFIX_EXIT_BEFORE_RUN="1")
    assert done.returncode == 1, done.stderr
    assert f"stagekit: error: hook stagekit_before_run of {ORIGIN} raised SystemExit: 4" in done.stderr


def test_a_hook_that_fails_after_the_run_keeps_the_run(project: Path) -> None:
    done = stagekit(project, "run", str(pipeline(project, ["first"], "thread")), "--json",
                    FAULTFIX_FAIL_AFTER_RUN="1")
    assert done.returncode == 1, done.stderr
    assert f"hook stagekit_after_run of {ORIGIN} raised RuntimeError: the report server is down" in done.stderr
    assert '"ok": true' in done.stdout and '"name": "first"' in done.stdout  # the run itself is kept


def _started(project: Path, args: list[str], mark: str, **extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "stagekit.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=project, env=env(project, **extra))
    deadline = time.monotonic() + 60
    while not (project / "marks" / mark).exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.2)
    return proc


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_ctrl_c_says_which_stages_finished(project: Path, executor: str) -> None:
    proc = _started(project, ["run", str(pipeline(project, ["first", "stuck"], executor))], "stuck")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    cut = "abandoned (still running in a thread)" if executor == "thread" else "cancelled"
    assert f"finished: first; {cut}: stuck" in err and "Traceback" not in err


def _tagged(tag: str) -> list[int]:
    """Processes whose environment carries ``tag``: the run's driver and everything it started."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if tag.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_sigterm_ends_every_process_the_run_started(project: Path) -> None:
    value = uuid.uuid4().hex
    tag = f"FAULTFIX_TAG={value}"
    proc = _started(project, ["run", str(pipeline(project, ["first", "stuck"], "process"))], "stuck",
                    FAULTFIX_TAG=value)
    started = _tagged(tag)
    assert len(started) >= 3  # the driver, its forkserver and at least the worker running 'stuck'
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "run terminated (SIGTERM)" in err and "finished: first" in err
    deadline = time.monotonic() + 10
    while _tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _tagged(tag) == []  # no worker, forkserver or resource tracker left behind


def test_anything_else_reaching_main_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from stagekit.cli import commands, main

    def exits(args: object) -> int:
        sys.exit(5)  # plugin code outside any stage, e.g. while a command loads plugins

    monkeypatch.setattr(commands, "cmd_plugins", exits)
    assert main(["plugins"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stagekit: error: plugin code called sys.exit(5) outside a stage\n  raised at ")
    assert "Traceback" not in err
