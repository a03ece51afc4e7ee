"""Run a pipeline of slow stages in a child process, press Ctrl-C once the first stage is done, report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).parents[2]

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import sample_stages as ss
from stagekit import Host, Pipeline, RunInterrupted, hookimpl, stage
slow = [stage(ss.slow, name=f"slow{{i}}", requires=["d"], provides=[f"s{{i}}"]) for i in range(4)]


class Tell:
    @hookimpl
    def stagekit_after_stage(self, run, stage, record):
        print("done", stage.name, flush=True)


if __name__ == "__main__":
    try:
        Pipeline([ss.make, *slow], host=Host(plugins=[("tell", Tell())], autoload=False)).run(
            executor={executor!r}, workers=2)
    except RunInterrupted as exc:
        statuses = sorted({{r.status for r in exc.result.stages.values()}})
        print("interrupted", exc.result.artifacts.get("d"), statuses, flush=True)
        sys.exit(130)
"""


def interrupt_run(executor: str, tmp_path: Path) -> tuple[int, str, float]:
    """(exit code, what the child printed, seconds from Ctrl-C to its exit)."""
    script = tmp_path / "interrupt.py"
    script.write_text(SCRIPT.format(tests=str(TESTS), executor=executor))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(TESTS)})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "done make"
    time.sleep(0.5)  # let the slow stages start
    start = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out, time.perf_counter() - start
