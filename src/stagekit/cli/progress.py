"""Live progress on a terminal: one status line, rewritten in place, for runs and for snapshot work."""

from __future__ import annotations

import time
from typing import Any, TextIO

from stagekit.hookspecs import hookimpl


class StatusLine:
    """One line on ``stream`` rewritten at most 10 times a second (callers enable it only on a terminal)."""

    def __init__(self, stream: TextIO, enabled: bool = True, width: int = 150) -> None:
        self.stream = stream
        self.enabled = enabled
        self.width = width
        self._drawn = 0.0
        self._shown = False

    def show(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn, self._shown = now, True
        self.stream.write("\r\x1b[2K" + text[: self.width])
        self.stream.flush()

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False


class Progress:
    """A plugin on the lifecycle hooks: done/total, what is running, the last finished stage, and how many
    stages were reused from the run store ("cached") with the time they saved."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.line = StatusLine(stream, enabled)
        self.total = self.done = self.failed = self.cached = 0
        self.saved = 0.0
        self.running: dict[str, float] = {}
        self.last = ""
        self.started = time.perf_counter()

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
        if record.status == "cached":
            self.cached += 1
            self.saved += record.saved
            self.last = f"{stage.name} cached (saved {record.saved:.2f}s)"
        else:
            self.last = f"{stage.name} {record.duration:.2f}s"
        self._draw(force=self.done == self.total)

    @hookimpl
    def stagekit_on_stage_error(self, run: Any, stage: Any, error: BaseException) -> None:
        self.running.pop(stage.name, None)
        self.failed += 1
        self.last = f"{stage.name} FAILED"
        self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        running = ", ".join(list(self.running)[:3]) + (" ..." if len(self.running) > 3 else "")
        elapsed = time.perf_counter() - self.started
        cached = f"  {self.cached} cached (saved {self.saved:.1f}s)" if self.cached else ""  # before it is cut
        self.line.show(f"[{self.done}/{self.total}] {elapsed:6.1f}s{cached}  running: {running or '-'}  "
                       f"last: {self.last}", force=force)

    def close(self) -> None:
        self.line.clear()
