"""A live progress display for ``stagekit run``: itself a plugin on the lifecycle hooks."""

from __future__ import annotations

import time
from typing import Any, TextIO

from stagekit.hookspecs import hookimpl


class Progress:
    """Rewrites one status line on a terminal: done/total, what is running, the last finished stage."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream, self.enabled = stream, enabled
        self.total = self.done = self.failed = 0
        self.running: dict[str, float] = {}
        self.last = ""
        self._drawn = 0.0

    @hookimpl
    def stagekit_before_run(self, run: Any) -> None:
        self.total = len(run.stages)
        self.started = time.perf_counter()
        self._draw(force=True)

    @hookimpl
    def stagekit_before_stage(self, run: Any, stage: Any) -> None:
        self.running[stage.name] = time.perf_counter()
        self._draw()

    @hookimpl
    def stagekit_after_stage(self, run: Any, stage: Any, record: Any) -> None:
        self.running.pop(stage.name, None)
        self.done += 1
        self.last = f"{stage.name} {record.duration:.2f}s"
        self._draw()

    @hookimpl
    def stagekit_on_stage_error(self, run: Any, stage: Any, error: BaseException) -> None:
        self.running.pop(stage.name, None)
        self.failed += 1
        self.last = f"{stage.name} FAILED"
        self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._drawn < 0.1 and self.done < self.total:  # at most 10 redraws a second
            return
        self._drawn = now
        running = ", ".join(list(self.running)[:3]) + (" ..." if len(self.running) > 3 else "")
        line = f"[{self.done}/{self.total}] {now - self.started:6.1f}s  running: {running or '-'}  last: {self.last}"
        self.stream.write("\r\x1b[2K" + line[:150])
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.total:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
