"""The thread executor: Ctrl-C returns promptly (without waiting for running stages) and keeps what completed."""

from __future__ import annotations

from pathlib import Path

from interrupting import interrupt_run


def test_ctrl_c_returns_promptly_and_keeps_what_completed(tmp_path: Path) -> None:
    code, out, seconds = interrupt_run("thread", tmp_path)
    assert (code, seconds < 5) == (130, True), out  # does not wait for the 30 s stages
    assert "interrupted {'base': 1} ['abandoned', 'cancelled', 'ok']" in out  # the running ones abandoned
