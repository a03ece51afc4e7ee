"""The HTML report of a run: one self-contained page with a header, the DAG with each stage's time, a stage
table, what each stage logged and the artifacts. A stage reused from the run store shows as "cached", with
the time it saved; in a run with the run store, the stage table says why each stage ran.

One file with inline CSS and inline SVG: no external asset, no JavaScript. This module assembles the page and
renders the header, the stage table and the artifacts; ``dag_svg`` draws the pipeline, ``logs`` the
stages' log lines and ``chart_svg`` the line chart of a Series. Artifacts render by duck typing (pandas is
never imported here: a Series or DataFrame is known by its type's module); an artifact that fails to render
shows its error instead.
``write_report("report.html", result, pipeline.dag(initial), title="demo")``
"""

from __future__ import annotations

import datetime
import itertools
import numbers
import os
import reprlib
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagekit._version import __version__
from stagekit.atomic import atomic_write_text
from stagekit.report.chart_svg import series_chart
from stagekit.report.dag_svg import dag_section
from stagekit.report.format import cell, duration, first_line
from stagekit.report.logs import CSS as _LOGS_CSS
from stagekit.report.logs import logs_section

if TYPE_CHECKING:
    from stagekit.graph.dag import Dag
    from stagekit.records import RunResult, StageRecord

__all__ = ["write_report"]

_STATUSES = ("ok", "cached", "failed", "cancelled", "abandoned", "pending")
_MAX_ENTRIES, _MAX_ITEMS = 200, 60  # of a mapping's table, of a list's text
_FRAME_ROWS, _FRAME_COLUMNS = 10, 12


def write_report(
    path: str | os.PathLike[str], result: RunResult, dag: Dag, *, title: str, artifacts: Sequence[str] | None = None
) -> Path:
    """Write the HTML report of ``result`` (a run of ``dag``) to ``path`` atomically; return the path.

    ``artifacts`` names the artifacts to show (default: those provided by the stages nothing waits for).
    The whole page is built before anything touches the disk, so a failure leaves any previous report intact.
    """
    names = list(artifacts) if artifacts is not None else _sink_artifacts(dag)
    records = _records(result, dag)
    page = _page(title, [_header(title, result, dag, records), dag_section(result, dag),
                         _stage_table(records), logs_section(records), _artifacts_section(result, names)])
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(target, page)


def _sink_artifacts(dag: Dag) -> list[str]:
    found: dict[str, None] = {}  # ordered and unique
    for name in dag.order:
        if not dag.successors[name]:
            found.update(dict.fromkeys(dag.stages[name].provides))
    return list(found)


def _records(result: RunResult, dag: Dag) -> list[StageRecord]:
    """The records in DAG order (a complete run keeps them in the order the stages finished)."""
    rank = {n: k for k, n in enumerate(dag.order)}
    return sorted(result.stages.values(), key=lambda r: rank.get(r.name, len(rank)))


# --- the page ---------------------------------------------------------------------------------------------

def _page(title: str, sections: list[str]) -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)} · stagekit report</title><style>{_CSS}{_LOGS_CSS}</style></head>\n<body>\n"
            + "\n".join(sections)
            + f"\n<footer>stagekit {escape(__version__)} · generated {stamp}</footer>\n</body></html>\n")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2430;margin:0 auto;max-width:1320px;
padding:24px 28px;background:#fafbfc}h1{font-size:24px;margin:0 0 10px}h3{font-size:15px;margin:0 0 8px}
h2{font-size:18px;margin:30px 0 10px;border-bottom:1px solid #e3e6eb;padding-bottom:4px}
h3 small{color:#6b7280;font-weight:400;margin-left:6px}.facts{display:flex;flex-wrap:wrap;gap:8px 22px;margin:6px 0}
.facts div{color:#6b7280}.facts b{color:#1f2430;font-weight:600;margin-left:4px}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;font-weight:600}
.s-ok{background:#dcfce7;color:#166534}.s-failed{background:#fee2e2;color:#991b1b}
.s-cached{background:#dbeafe;color:#1e40af}
.s-cancelled,.s-abandoned,.s-pending{background:#e4e4e7;color:#52525b}.muted{color:#6b7280}.error{color:#b91c1c}
.failure{background:#fef2f2;border:1px solid #fecaca;border-radius:6px;padding:8px 12px;margin-top:10px}
.scroll{overflow:auto;border:1px solid #e3e6eb;border-radius:8px;background:#fff}.legend{color:#6b7280;font-size:12px}
.legend i{display:inline-block;width:11px;height:11px;border-radius:3px;margin:0 4px 0 12px;vertical-align:-1px}
table{border-collapse:collapse;background:#fff;font-size:13px}th{background:#f3f4f6;font-weight:600}
th,td{padding:4px 10px;text-align:left;border-bottom:1px solid #eceef2;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.err{color:#b91c1c;max-width:420px}code{font:12px ui-monospace,Menlo,Consolas,monospace}
.bar{display:inline-block;height:6px;background:#94a3b8;border-radius:3px;margin-right:6px;vertical-align:1px}
.artifact{background:#fff;border:1px solid #e3e6eb;border-radius:8px;padding:12px 16px;margin:12px 0;overflow:auto}
pre{white-space:pre-wrap;margin:0}footer{margin-top:36px;color:#9ca3af;font-size:12px}
.node rect{stroke-width:1.4}.node.ok>rect{fill:#effcf3;stroke:#22a559}
.node.cancelled>rect,.node.abandoned>rect,.node.pending>rect{fill:#f4f4f5;stroke:#a1a1aa;stroke-dasharray:4 3}
.node.slow>rect{stroke:#ea7a0c;stroke-width:2.6}.node.failed>rect{fill:#fef1f1;stroke:#dc2626}
.node.cached>rect{fill:#eff6ff;stroke:#3b82f6}
.node rect.track{fill:#e5e7eb;stroke:none}.node rect.bar{fill:#64748b;stroke:none}.node.slow rect.bar{fill:#ea7a0c}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}.name{font-size:12.5px;font-weight:600;
fill:#111827}.art{font-size:10.5px;fill:#6b7280}.time,.share{font-size:11px;fill:#374151}
.edge{fill:none;stroke:#9aa3b2;stroke-width:1.3}.edge.after{stroke-dasharray:5 4}
"""


# --- header and stage table -------------------------------------------------------------------------------

def _header(title: str, result: RunResult, dag: Dag, records: list[StageRecord]) -> str:
    counts = [(s, sum(r.status == s for r in records)) for s in _STATUSES]
    status = "ok" if result.ok else "failed"
    facts = [("run", f"<code>{escape(result.run_id)}</code>"), ("executor", escape(result.executor)),
             ("duration", duration(result.duration)),
             ("status", f'<span class="badge s-{status}">{"succeeded" if result.ok else "failed"}</span>'),
             ("stages", " · ".join(f'<span class="badge s-{s}">{n} {s}</span>' for s, n in counts if n))]
    cached = [r for r in records if r.status == "cached"]
    if cached:
        facts.append(("saved", f"{duration(sum(r.saved for r in cached))} (by the cached stages)"))
    if result.snapshot:
        facts.insert(3, ("snapshot", f"<code>{escape(result.snapshot)}</code>"))
    if dag.initial:
        facts.append(("inputs", escape(", ".join(sorted(dag.initial)))))
    body = "".join(f"<div>{k}<b>{v}</b></div>" for k, v in facts)
    notes = "".join(f'<div class="failure"><b>{escape(r.name)}</b> failed: {escape(first_line(r.error))}</div>'
                    for r in records if r.status == "failed")
    return f'<header><h1>{escape(title)}</h1><div class="facts">{body}</div>{notes}</header>'


def _stage_table(records: list[StageRecord]) -> str:
    """One row per stage; a cached one's time is what it saved; a "reason" column when the run said why."""
    longest = max((r.duration for r in records), default=0.0) or 1.0
    why = any(r.reason for r in records)
    rows = []
    for r in records:
        ran = r.status in ("ok", "failed")
        bar = f'<span class="bar" style="width:{60 * r.duration / longest:.0f}px"></span>' if ran else ""
        time = duration(r.duration) if ran else f"saved {duration(r.saved)}" if r.status == "cached" else "-"
        reason = f"<td>{escape(r.reason or '')}</td>" if why else ""
        rows.append(f"<tr><td><code>{escape(r.name)}</code></td><td>{escape(r.plugin or '-')}</td>"
                    f'<td><span class="badge s-{escape(r.status)}">{escape(r.status)}</span></td>'
                    f'<td class="num">{bar}{time}</td><td>{escape(", ".join(r.provided))}</td>{reason}'
                    f'<td class="err">{escape(first_line(r.error))}</td></tr>')
    head = "".join(f"<th{' class=num' if h == 'time' else ''}>{h}</th>"
                   for h in ("stage", "plugin", "status", "time", "provided", *(["reason"] if why else []), "error"))
    return f'<section id="stages"><h2>Stages</h2><table><tr>{head}</tr>{"".join(rows)}</table></section>'


# --- artifacts --------------------------------------------------------------------------------------------

def _artifacts_section(result: RunResult, names: list[str]) -> str:
    parts = []
    for name in names:
        kind, body = "", '<p class="muted">not produced in this run</p>'
        if name in result.artifacts:
            value = result.artifacts[name]
            kind = type(value).__name__
            try:
                body = _render_value(value)
            except Exception as exc:  # one artifact that cannot render must not cost the whole report
                body = f'<p class="error">could not render {escape(name)}: {escape(first_line(exc))}</p>'
        parts.append(f'<div class="artifact" data-artifact="{escape(name)}"><h3><code>{escape(name)}</code>'
                     f"<small>{escape(kind)}</small></h3>{body}</div>")
    body = "".join(parts) or '<p class="muted">no artifacts to show</p>'
    return f'<section id="artifacts"><h2>Artifacts</h2>{body}</section>'


def _is_pandas(value: Any, kind: str) -> bool:
    return type(value).__module__.startswith("pandas") and type(value).__name__ == kind


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, numbers.Number, datetime.date))


def _render_value(value: Any) -> str:
    """By what the value is: a chart, a frame's head, a table, a list, else its type and a short repr."""
    if _is_pandas(value, "Series"):
        chart = series_chart(value)
        if chart is not None:
            return chart
    elif _is_pandas(value, "DataFrame"):
        return _frame(value)
    elif isinstance(value, Mapping) and value and all(_is_scalar(v) for v in value.values()):
        return _mapping(value)
    elif isinstance(value, (list, tuple)) and all(_is_scalar(v) for v in value):
        return _scalars(value)
    return _summary(value)


def _mapping(value: Mapping[Any, Any]) -> str:
    rows = "".join(f'<tr><td>{escape(cell(k))}</td><td class="num">{escape(cell(v))}</td></tr>'
                   for k, v in itertools.islice(value.items(), _MAX_ENTRIES))
    more = f'<p class="muted">first {_MAX_ENTRIES} of {len(value):,} entries</p>' if len(value) > _MAX_ENTRIES else ""
    return f"<table>{rows}</table>{more}"


def _scalars(value: list[Any] | tuple[Any, ...]) -> str:
    more = f"… ({len(value):,} items)" if len(value) > _MAX_ITEMS else f"({len(value):,} items)"
    text = ", ".join(cell(v, 40) for v in value[:_MAX_ITEMS])
    return f'<p>{escape(text)} <span class="muted">{more}</span></p>'


def _summary(value: Any) -> str:
    short = reprlib.Repr()
    short.maxstring = short.maxother = 300
    size = f" · {len(value):,} items" if hasattr(value, "__len__") and not isinstance(value, str) else ""
    return (f'<p class="muted">{escape(type(value).__module__)}.{escape(type(value).__qualname__)}{size}</p>'
            f"<pre>{escape(short.repr(value))}</pre>")


def _frame(df: Any) -> str:
    rows, cols = df.shape
    head = df.iloc[:_FRAME_ROWS, :_FRAME_COLUMNS]
    th = "".join(f"<th>{escape(cell(c, 30))}</th>" for c in head.columns)
    body = "".join(f"<tr><th>{escape(cell(i, 30))}</th>" + "".join(
        f'<td class="{"num" if isinstance(v, numbers.Number) else ""}">{escape(cell(v))}</td>' for v in row) + "</tr>"
        for i, row in zip(head.index, head.itertuples(index=False), strict=True))
    more = f", first {min(cols, _FRAME_COLUMNS)} columns" if cols > _FRAME_COLUMNS else ""
    return (f'<p class="muted">{rows:,} rows \u00d7 {cols:,} columns (first {min(rows, _FRAME_ROWS)} rows{more})</p>'
            f"<table><tr><th>{escape(cell(df.index.name or '', 30))}</th>{th}</tr>{body}</table>")
