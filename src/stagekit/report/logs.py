"""The report's Logs section: what each stage logged, in DAG order, one collapsible block per stage.

A stage's lines are those its ``StageRecord.logs`` kept (the run's log level and above, under any executor):
time (UTC), level, logger and message, with a record's traceback below it; warnings and errors are coloured.
A stage with very many lines shows the first ``MAX_LINES``, and says how many there were.
"""

from __future__ import annotations

import datetime
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stagekit.records import LogEntry, StageRecord

__all__ = ["MAX_LINES", "logs_section"]

MAX_LINES = 1000  # per stage

CSS = """
details.logs{background:#fff;border:1px solid #e3e6eb;border-radius:8px;padding:6px 12px;margin:8px 0}
details.logs summary{cursor:pointer}details.logs pre{font:12px/1.5 ui-monospace,Menlo,Consolas,monospace;
margin:6px 0 2px;overflow:auto}.lv-WARNING{color:#b45309}.lv-ERROR,.lv-CRITICAL{color:#b91c1c;font-weight:600}
.lv-DEBUG{color:#6b7280}
"""


def logs_section(records: list[StageRecord]) -> str:
    blocks = [_stage_block(r) for r in records if r.logs]
    body = "".join(blocks) or '<p class="muted">no stage logged anything at the run\'s log level</p>'
    return f'<section id="logs"><h2>Logs</h2>{body}</section>'


def _stage_block(record: StageRecord) -> str:
    entries = record.logs
    worst = max(e.level for e in entries)
    counts = f"{len(entries):,} line{'s' if len(entries) != 1 else ''}"
    warned = sum(e.level >= 30 for e in entries)  # logging.WARNING, without importing logging for a number
    if warned:
        counts += f" · {warned:,} warning{'s' if warned != 1 else ''} or worse"
    lines = "\n".join(_line(e) for e in entries[:MAX_LINES])
    more = (f'<p class="muted">first {MAX_LINES:,} of {len(entries):,} lines</p>'
            if len(entries) > MAX_LINES else "")
    opened = " open" if worst >= 30 else ""
    return (f'<details class="logs" data-stage="{escape(record.name)}"{opened}><summary><code>'
            f"{escape(record.name)}</code> <small class=\"muted\">{counts}</small></summary>"
            f"<pre>{lines}</pre>{more}</details>")


def _line(entry: LogEntry) -> str:
    when = datetime.datetime.fromtimestamp(entry.created, datetime.UTC).strftime("%H:%M:%S.%f")[:-3]
    level = entry.level_name
    text = f"{when} {level} {entry.logger}: {entry.message}"
    if entry.exc_text:
        text += "\n" + entry.exc_text
    return f'<span class="lv-{escape(level)}">{escape(text)}</span>'
