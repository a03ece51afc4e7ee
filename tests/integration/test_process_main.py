"""Functions of ``__main__`` under the process executor, from real interpreters: ``python -c``, ``python -``,
a script without an ``if __name__ == "__main__":`` guard and one with it. Each runs the same pipeline (a
``__main__`` function, a lambda, a closure, a value of a ``__main__`` class) under thread and process, prints
one line, and must print nothing else: no traceback, no multiprocessing noise, and quickly.

They use the running interpreter (stagekit is installed in it); no fresh venv is needed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

PIPELINE = '''
import dataclasses
import logging

from stagekit import Pipeline, stage

log = logging.getLogger("main_test")


@dataclasses.dataclass
class Point:
    x: int


def shifter(n):
    def shift(p):
        return Point(p.x + n)
    return shift


@stage(provides=["p"])
def load():
    log.warning("loading")
    return Point(1)


shift = stage(shifter(40), name="shift", requires=["p"], provides=["q"])
double = stage(lambda q: Point(q.x * 2), name="double", requires=["q"], provides=["r"])


def run(executor):
    result = Pipeline([load, shift, double]).run(executor=executor, workers=2)
    r = result.artifacts["r"]
    return r.x, isinstance(r, Point), [e.message for e in result.stages["load"].logs]

'''
RUN = 'print("thread", *run("thread"), "process", *run("process"))\n'
EXPECTED = "thread 82 True ['loading'] process 82 True ['loading']"


def check(proc: subprocess.CompletedProcess[str], seconds: float) -> None:
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == EXPECTED, proc.stdout
    assert "Traceback" not in proc.stderr
    # the stage's warning, shown once per run in the driver (Python's last-resort handler), and nothing else
    assert proc.stderr.splitlines() == ["loading", "loading"], proc.stderr
    assert seconds < 60


def run_python(*args: str, stdin: str | None = None, cwd: Path | None = None,
               method: str | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    env = None
    if method is not None:
        import os

        env = {**os.environ, "STAGEKIT_START_METHOD": method}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)
    return proc, time.perf_counter() - start


def test_python_c() -> None:
    check(*run_python("-c", PIPELINE + RUN))


def test_python_stdin() -> None:
    check(*run_python("-", stdin=PIPELINE + RUN))


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_script_without_a_main_guard(tmp_path: Path, method: str) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(PIPELINE + RUN, encoding="utf-8")
    check(*run_python(str(script), cwd=tmp_path, method=method))


def test_a_script_with_a_main_guard(tmp_path: Path) -> None:
    script = tmp_path / "guarded.py"
    script.write_text(PIPELINE + 'if __name__ == "__main__":\n    ' + RUN, encoding="utf-8")
    check(*run_python(str(script), cwd=tmp_path))


def test_python_m_with_a_module_of_stages(tmp_path: Path) -> None:
    """``python -m pkg.mod``: the main module is importable by name there; it still travels by value."""
    package = tmp_path / "mainpkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "job.py").write_text(PIPELINE + RUN, encoding="utf-8")
    check(*run_python("-m", "mainpkg.job", cwd=tmp_path))
