"""The thread executor: parallel branches share values; Ctrl-C returns promptly and keeps what completed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

TESTS = Path(__file__).parents[1]


def test_ctrl_c_returns_promptly_and_keeps_what_completed(tmp_path: Path) -> None:
    script = tmp_path / "interrupt.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import sample_stages as ss
        from stagekit import Host, Pipeline, RunInterrupted, hookimpl, stage
        slow = [stage(ss.slow, name=f"slow{{i}}", requires=["d"], provides=[f"s{{i}}"]) for i in range(4)]

        class Tell:
            @hookimpl
            def stagekit_after_stage(self, run, stage, record):
                print("done", stage.name, flush=True)

        host = Host(plugins=[("tell", Tell())], autoload=False)
        try:
            Pipeline([ss.make, *slow], host=host).run(executor="thread", workers=2)
        except RunInterrupted as exc:
            statuses = sorted({{r.status for r in exc.result.stages.values()}})
            print("interrupted", exc.result.artifacts.get("d"), statuses, flush=True)
            sys.exit(130)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(TESTS)})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "done make"
    time.sleep(0.3)
    start = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert time.perf_counter() - start < 5  # does not wait for the 30 s stages
    assert proc.returncode == 130, out
    assert "interrupted {'base': 1} ['cancelled', 'ok']" in out
