"""A self-contained HTML report of a run: a header, the DAG with each stage's time, a stage table, artifacts.

One file with inline CSS and inline SVG: no external asset, no JavaScript. Artifacts render by duck typing
(pandas is never imported here: a Series or DataFrame is known by its type's module); an artifact that fails
to render shows its error instead. ``write_report("report.html", result, pipeline.dag(initial), title="demo")``
"""

from __future__ import annotations

import datetime
import html
import itertools
import math
import numbers
import os
import reprlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from stagekit._version import __version__
from stagekit.atomic import atomic_write_text

if TYPE_CHECKING:
    from stagekit.graph.dag import Dag
    from stagekit.run.runner import RunResult, StageRecord

__all__ = ["write_report"]

_BOX_W, _BOX_H, _DUMMY_W = 184.0, 58.0, 12.0  # a stage's box; a long edge's placeholder in a layer it crosses
_GAP, _LAYER_GAP, _MARGIN = 22.0, 54.0, 14.0
_SLOWEST = 3  # how many of the slowest stages are highlighted
_STATUSES = ("ok", "failed", "cancelled", "pending")
_e = html.escape


def write_report(
    path: str | os.PathLike[str], result: RunResult, dag: Dag, *, title: str, artifacts: Sequence[str] | None = None
) -> Path:
    """Write the HTML report of ``result`` (a run of ``dag``) to ``path`` atomically; return the path.

    ``artifacts`` names the artifacts to show (default: those provided by the stages nothing waits for).
    The whole page is built before anything touches the disk, so a failure leaves any previous report intact.
    """
    names = list(artifacts) if artifacts is not None else _sink_artifacts(dag)
    records = _records(result, dag)
    page = _page(title, [_header(title, result, dag, records), _dag_section(result, dag),
                         _stage_table(records), _artifacts_section(result, names)])
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


# --- formatting -------------------------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    v = float(value)
    if not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("∞" if v > 0 else "-∞")
    if v == 0:
        return "0"
    if abs(v) >= 1e15 or abs(v) < 1e-4:
        return f"{v:.4e}"
    return f"{v:,.2f}" if abs(v) >= 1000 else f"{v:.4g}"


def _cell(value: Any, width: int = 60) -> str:
    """A value as short text: numbers formatted, a midnight timestamp as its date, long text clipped."""
    text = _number(value) if isinstance(value, numbers.Number) else str(value)
    if isinstance(value, datetime.datetime) and not (value.hour or value.minute or value.second or value.microsecond):
        text = value.date().isoformat()
    return text if len(text) <= width else text[: width - 1] + "…"


def _first_line(error: BaseException | None) -> str:
    if error is None:
        return ""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _page(title: str, sections: list[str]) -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)} · stagekit report</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(sections)
            + f"\n<footer>stagekit {_e(__version__)} · generated {stamp}</footer>\n</body></html>\n")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2430;margin:0 auto;max-width:1320px;
padding:24px 28px;background:#fafbfc}h1{font-size:24px;margin:0 0 10px}h3{font-size:15px;margin:0 0 8px}
h2{font-size:18px;margin:30px 0 10px;border-bottom:1px solid #e3e6eb;padding-bottom:4px}
h3 small{color:#6b7280;font-weight:400;margin-left:6px}.facts{display:flex;flex-wrap:wrap;gap:8px 22px;margin:6px 0}
.facts div{color:#6b7280}.facts b{color:#1f2430;font-weight:600;margin-left:4px}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;font-weight:600}
.s-ok{background:#dcfce7;color:#166534}.s-failed{background:#fee2e2;color:#991b1b}
.s-cancelled,.s-pending{background:#e4e4e7;color:#52525b}.muted{color:#6b7280}.error{color:#b91c1c}
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
.node.cancelled>rect,.node.pending>rect{fill:#f4f4f5;stroke:#a1a1aa;stroke-dasharray:4 3}
.node.slow>rect{stroke:#ea7a0c;stroke-width:2.6}.node.failed>rect{fill:#fef1f1;stroke:#dc2626}
.node rect.track{fill:#e5e7eb;stroke:none}.node rect.bar{fill:#64748b;stroke:none}.node.slow rect.bar{fill:#ea7a0c}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}.name{font-size:12.5px;font-weight:600;
fill:#111827}.art{font-size:10.5px;fill:#6b7280}.time,.share{font-size:11px;fill:#374151}
.edge{fill:none;stroke:#9aa3b2;stroke-width:1.3}.edge.after{stroke-dasharray:5 4}
"""


# --- header and stage table -------------------------------------------------------------------------------

def _header(title: str, result: RunResult, dag: Dag, records: list[StageRecord]) -> str:
    counts = [(s, sum(r.status == s for r in records)) for s in _STATUSES]
    status = "ok" if result.ok else "failed"
    facts = [("run", f"<code>{_e(result.run_id)}</code>"), ("executor", _e(result.executor)),
             ("duration", _duration(result.duration)),
             ("status", f'<span class="badge s-{status}">{"succeeded" if result.ok else "failed"}</span>'),
             ("stages", " · ".join(f'<span class="badge s-{s}">{n} {s}</span>' for s, n in counts if n))]
    if result.snapshot:
        facts.insert(3, ("snapshot", f"<code>{_e(result.snapshot)}</code>"))
    if dag.initial:
        facts.append(("inputs", _e(", ".join(sorted(dag.initial)))))
    body = "".join(f"<div>{k}<b>{v}</b></div>" for k, v in facts)
    notes = "".join(f'<div class="failure"><b>{_e(r.name)}</b> failed: {_e(_first_line(r.error))}</div>'
                    for r in records if r.status == "failed")
    return f'<header><h1>{_e(title)}</h1><div class="facts">{body}</div>{notes}</header>'


def _stage_table(records: list[StageRecord]) -> str:
    longest = max((r.duration for r in records), default=0.0) or 1.0
    rows = []
    for r in records:
        ran = r.status in ("ok", "failed")
        bar = f'<span class="bar" style="width:{60 * r.duration / longest:.0f}px"></span>' if ran else ""
        rows.append(f"<tr><td><code>{_e(r.name)}</code></td><td>{_e(r.plugin or '-')}</td>"
                    f'<td><span class="badge s-{_e(r.status)}">{_e(r.status)}</span></td>'
                    f'<td class="num">{bar}{_duration(r.duration) if ran else "-"}</td>'
                    f'<td>{_e(", ".join(r.provided))}</td><td class="err">{_e(_first_line(r.error))}</td></tr>')
    head = "".join(f"<th{' class=num' if h == 'time' else ''}>{h}</th>"
                   for h in ("stage", "plugin", "status", "time", "provided", "error"))
    return f'<section id="stages"><h2>Stages</h2><table><tr>{head}</tr>{"".join(rows)}</table></section>'


# --- the DAG ----------------------------------------------------------------------------------------------

class _Layout(NamedTuple):
    layers: list[list[str]]  # stages and placeholders ("\0source\0layer"), top to bottom
    cx: dict[str, float]  # the centre x of every node
    preds: dict[str, list[str]]  # neighbours in the layer above / below: edges join adjacent layers only
    succs: dict[str, list[str]]
    routes: list[tuple[str, str, str, list[str]]]  # (source, target, artifacts, every node the edge passes)


def _width(node: str) -> float:
    return _DUMMY_W if node.startswith("\0") else _BOX_W


def _layout(dag: Dag) -> _Layout:
    """Layer = the longest path from a source (iteratively, in topological order); a long edge passes one
    placeholder per layer it crosses, shared by the edges of one source so they bundle; barycentre sweeps
    order each layer."""
    level: dict[str, int] = {}
    for n in dag.order:
        level[n] = max((level[p] + 1 for p in dag.deps[n]), default=0)
    for n in dag.order:  # a stage that waits for nothing sits just above its first consumer
        if not dag.deps[n] and dag.successors[n]:
            level[n] = min(level[s] for s in dag.successors[n]) - 1
    layers: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for n in dag.order:
        layers[level[n]].append(n)
    labels: dict[tuple[str, str], list[str]] = {}
    for src, dst, label in dag.labelled_edges():
        if src in dag.stages:  # not the initial artifacts' pseudo-stage
            labels.setdefault((src, dst), []).append(label)
    preds: dict[str, list[str]] = {n: [] for n in dag.order}
    succs: dict[str, list[str]] = {n: [] for n in dag.order}
    routes = []
    for (src, dst), found in labels.items():
        hops = [src, *(f"\0{src}\0{k}" for k in range(level[src] + 1, level[dst])), dst]
        for k, (a, b) in enumerate(itertools.pairwise(hops)):
            if b not in preds:
                preds[b], succs[b] = [], []
                layers[level[src] + k + 1].append(b)
            if b not in succs[a]:
                succs[a].append(b)
                preds[b].append(a)
        routes.append((src, dst, ", ".join(x for x in found if x) or "(after)", hops))
    _order(layers, preds, succs)
    return _Layout(layers, _place(layers, preds, succs), preds, succs, routes)


def _order(layers: list[list[str]], preds: dict[str, list[str]], succs: dict[str, list[str]]) -> None:
    """Fewer crossings: sort each layer by the mean position of its neighbours; down, up, down, up."""
    for sweep in range(4):
        down = sweep % 2 == 0
        near = preds if down else succs
        for i in range(1, len(layers)) if down else range(len(layers) - 2, -1, -1):
            pos = {n: k for k, n in enumerate(layers[i - 1] if down else layers[i + 1])}
            keys = {n: sum(pos[m] for m in near[n]) / len(near[n]) if near[n] else float(k)
                    for k, n in enumerate(layers[i])}
            layers[i].sort(key=keys.__getitem__)


def _sep(a: str, b: str) -> float:
    """The distance between the centres of neighbours ``a`` and ``b`` in a layer."""
    return (_width(a) + _width(b)) / 2 + (8.0 if a.startswith("\0") and b.startswith("\0") else _GAP)


def _place(layers: list[list[str]], preds: dict[str, list[str]], succs: dict[str, list[str]]) -> dict[str, float]:
    """Each node wants the mean x of its neighbours; the mean of a left-packed and a right-packed placement
    keeps the order and the spacing, so two boxes of a layer never overlap."""
    cx: dict[str, float] = {}
    for row in layers:
        offsets = list(itertools.accumulate((_sep(a, b) for a, b in itertools.pairwise(row)), initial=0.0))
        cx.update((n, x - offsets[-1] / 2) for n, x in zip(row, offsets, strict=True))
    for sweep in range(5):
        near = preds if sweep % 2 == 0 else succs
        for row in layers if sweep % 2 == 0 else reversed(layers):
            want = [sum(cx[m] for m in near[n]) / len(near[n]) if near[n] else cx[n] for n in row]
            left, right = list(want), list(want)
            for k in range(1, len(row)):
                left[k] = max(want[k], left[k - 1] + _sep(row[k - 1], row[k]))
            for k in range(len(row) - 2, -1, -1):
                right[k] = min(want[k], right[k + 1] - _sep(row[k], row[k + 1]))
            cx.update((n, (a + b) / 2) for n, a, b in zip(row, left, right, strict=True))
    low = min((x - _width(n) / 2 for n, x in cx.items()), default=0.0)
    return {n: x - low + _MARGIN for n, x in cx.items()}


def _ports(node: str, others: list[str], cx: dict[str, float]) -> dict[str, float]:
    """Where each edge leaves or enters a box: spread along its middle in the order of the other ends."""
    if node.startswith("\0") or len(others) < 2:
        return {m: cx[node] for m in others}
    step = min(16.0, _BOX_W * 0.7 / (len(others) - 1))
    ranked = sorted(others, key=cx.__getitem__)
    return {m: cx[node] + (k - (len(ranked) - 1) / 2) * step for k, m in enumerate(ranked)}


def _edge_path(hops: list[str], top: dict[str, float], ports: dict[str, dict[str, float]]) -> str:
    """Vertical curves from layer to layer, straight down through each placeholder."""
    parts: list[str] = []
    for a, b in itertools.pairwise(hops):
        x0, y0 = ports["out" + a][b], top[a] + _BOX_H
        x1, y1 = ports["in" + b][a], top[b] - (0 if b.startswith("\0") else 2)
        mid = (y0 + y1) / 2
        parts.append(f"{'L' if parts else 'M'}{x0:.1f},{y0:.1f} "
                     f"C{x0:.1f},{mid:.1f} {x1:.1f},{mid:.1f} {x1:.1f},{y1:.1f}")
    return " ".join(parts)


def _node_svg(name: str, dag: Dag, rec: StageRecord | None, x: float, y: float, share: float, slow: bool) -> str:
    st, status = dag.stages[name], rec.status if rec is not None else "pending"
    ran = status in ("ok", "failed")
    duration = _duration(rec.duration) if rec is not None and ran else "not run"
    tip = [name, f"plugin: {(rec.plugin if rec else None) or '-'}", f"status: {status}",
           f"time: {duration}" + (f" ({share:.0%} of the stage time)" if ran else ""),
           f"requires: {', '.join(st.requires) or '-'}", f"provides: {', '.join(st.provides) or '-'}"]
    if rec is not None and rec.error is not None:
        tip.append(f"error: {_first_line(rec.error)}")
    provides = "→ " + ", ".join(st.provides) if st.provides else "(provides nothing)"
    inner, left = _BOX_W - 20, x + 10
    return (f'<g class="node {_e(status)}{" slow" if slow else ""}" data-stage="{_e(name)}" '
            f'data-status="{_e(status)}"><title>{_e(chr(10).join(tip))}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{_BOX_W:.0f}" height="{_BOX_H:.0f}" rx="7"/>'
            f'<text class="name" x="{left:.1f}" y="{y + 18:.1f}">{_e(_cell(name, 24))}</text>'
            f'<text class="art" x="{left:.1f}" y="{y + 32:.1f}">{_e(_cell(provides, 32))}</text>'
            f'<text class="time" x="{left:.1f}" y="{y + 46:.1f}">{duration}</text>'
            f'<text class="share" x="{x + _BOX_W - 10:.1f}" y="{y + 46:.1f}" text-anchor="end">'
            f'{f"{share:.0%}" if ran else ""}</text>'
            f'<rect class="track" x="{left:.1f}" y="{y + 50:.1f}" width="{inner:.0f}" height="3" rx="1.5"/>'
            f'<rect class="bar" x="{left:.1f}" y="{y + 50:.1f}" width="{inner * share:.1f}" height="3" rx="1.5"/></g>')


def _dag_svg(result: RunResult, dag: Dag) -> str:
    lay = _layout(dag)
    top = {n: _MARGIN + i * (_BOX_H + _LAYER_GAP) for i, row in enumerate(lay.layers) for n in row}
    ports = {f"out{n}": _ports(n, lay.succs[n], lay.cx) for n in lay.cx}
    ports.update({f"in{n}": _ports(n, lay.preds[n], lay.cx) for n in lay.cx})
    total = sum(r.duration for r in result.stages.values()) or 1.0
    ranked = sorted((r for r in result.stages.values() if r.duration > 0), key=lambda r: -r.duration)
    slow = {r.name for r in ranked[:_SLOWEST]}
    edges = [f'<path class="edge{" after" if label == "(after)" else ""}" d="{_edge_path(hops, top, ports)}" '
             f'marker-end="url(#arrow)"><title>{_e(f"{src} → {dst}: {label}")}</title></path>'
             for src, dst, label, hops in lay.routes]
    nodes = []
    for name in dag.order:
        rec = result.stages.get(name)
        share = rec.duration / total if rec is not None else 0.0
        nodes.append(_node_svg(name, dag, rec, lay.cx[name] - _BOX_W / 2, top[name], share, name in slow))
    width = max((x + _width(n) / 2 for n, x in lay.cx.items()), default=0.0) + _MARGIN
    height = max(len(lay.layers) * (_BOX_H + _LAYER_GAP) - _LAYER_GAP, 0) + 2 * _MARGIN
    marker = ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
              'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#7c8596"/></marker></defs>')
    return (f'<svg class="dag" width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'role="img" aria-label="pipeline graph">{marker}<g class="edges">{"".join(edges)}</g>'
            f'<g class="nodes">{"".join(nodes)}</g></svg>')


def _dag_section(result: RunResult, dag: Dag) -> str:
    legend = ('<p class="legend"><i style="background:#effcf3;border:1px solid #22a559"></i>ok'
              '<i style="background:#fef1f1;border:1px solid #dc2626"></i>failed'
              '<i style="background:#f4f4f5;border:1px dashed #a1a1aa"></i>cancelled'
              f'<i style="background:#fff;border:2px solid #ea7a0c"></i>the {_SLOWEST} slowest stages'
              " · bars: share of the total stage time · hover over a box or an edge for details</p>")
    return f'<section id="dag"><h2>Pipeline</h2><div class="scroll">{_dag_svg(result, dag)}</div>{legend}</section>'


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
                body = f'<p class="error">could not render {_e(name)}: {_e(_first_line(exc))}</p>'
        parts.append(f'<div class="artifact" data-artifact="{_e(name)}"><h3><code>{_e(name)}</code>'
                     f"<small>{_e(kind)}</small></h3>{body}</div>")
    body = "".join(parts) or '<p class="muted">no artifacts to show</p>'
    return f'<section id="artifacts"><h2>Artifacts</h2>{body}</section>'


def _is_pandas(value: Any, kind: str) -> bool:
    return type(value).__module__.startswith("pandas") and type(value).__name__ == kind


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, numbers.Number, datetime.date))


def _render_value(value: Any) -> str:
    if _is_pandas(value, "Series"):
        chart = _series_chart(value)
        if chart is not None:
            return chart
    elif _is_pandas(value, "DataFrame"):
        return _frame(value)
    elif isinstance(value, Mapping) and value and all(_is_scalar(v) for v in value.values()):
        rows = "".join(f'<tr><td>{_e(_cell(k))}</td><td class="num">{_e(_cell(v))}</td></tr>'
                       for k, v in itertools.islice(value.items(), 200))
        more = f'<p class="muted">first 200 of {len(value):,} entries</p>' if len(value) > 200 else ""
        return f"<table>{rows}</table>{more}"
    elif isinstance(value, (list, tuple)) and all(_is_scalar(v) for v in value):
        more = f"… ({len(value):,} items)" if len(value) > 60 else f"({len(value):,} items)"
        return f'<p>{_e(", ".join(_cell(v, 40) for v in value[:60]))} <span class="muted">{more}</span></p>'
    short = reprlib.Repr()
    short.maxstring = short.maxother = 300
    size = f" · {len(value):,} items" if hasattr(value, "__len__") and not isinstance(value, str) else ""
    return (f'<p class="muted">{_e(type(value).__module__)}.{_e(type(value).__qualname__)}{size}</p>'
            f"<pre>{_e(short.repr(value))}</pre>")


def _frame(df: Any) -> str:
    rows, cols = df.shape
    head = df.iloc[:10, :12]
    th = "".join(f"<th>{_e(_cell(c, 30))}</th>" for c in head.columns)
    body = "".join(f"<tr><th>{_e(_cell(i, 30))}</th>" + "".join(
        f'<td class="{"num" if isinstance(v, numbers.Number) else ""}">{_e(_cell(v))}</td>' for v in row) + "</tr>"
        for i, row in zip(head.index, head.itertuples(index=False), strict=True))
    more = f", first {min(cols, 12)} columns" if cols > 12 else ""
    return (f'<p class="muted">{rows:,} rows \u00d7 {cols:,} columns (first {min(rows, 10)} rows{more})</p>'
            f"<table><tr><th>{_e(_cell(df.index.name or '', 30))}</th>{th}</tr>{body}</table>")


def _series_chart(s: Any) -> str | None:
    """An SVG line chart of a numeric Series with a numeric or datetime index (None: not chartable)."""
    import numpy as np  # a Series exists, so pandas and numpy are installed

    dates = getattr(s.index.dtype, "kind", "") == "M"
    if getattr(s.index.dtype, "kind", "") not in "iufM" or getattr(s.dtype, "kind", "") not in "iufb":
        return None
    y = s.to_numpy(dtype="float64", na_value=np.nan)
    valid = ~np.asarray(s.index.isna())
    x = np.zeros(len(s))
    x[valid] = (s.index[valid].to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9 if dates
                else s.index[valid].to_numpy(dtype="float64"))
    keep = np.flatnonzero(np.isfinite(y) & np.isfinite(x) & valid)
    if len(keep) == 0:
        return '<p class="muted">no finite values to chart</p>'
    keep = keep[np.argsort(x[keep], kind="stable")]
    drawn = _downsample(keep, y) if len(keep) > 1000 else keep
    fmt = "%Y-%m-%d" if x[keep[-1]] - x[keep[0]] >= 3 * 86400 else "%Y-%m-%d %H:%M"

    def label(i: int) -> str:
        return str(s.index[i].strftime(fmt)) if dates else _number(s.index[i])

    return _chart_svg(x[drawn], y[drawn], drawn, label, len(keep))


def _downsample(keep: Any, y: Any) -> Any:
    """The minimum and the maximum of each of 500 buckets (in x order): the shape survives, the file stays small."""
    import numpy as np

    size = -(-len(keep) // 500)
    ranks: list[int] = []
    for a in range(0, len(keep), size):
        chunk = y[keep[a:a + size]]
        ranks += [a + int(np.argmin(chunk)), a + int(np.argmax(chunk))]
    return keep[np.unique(ranks)]


def _nice_ticks(low: float, high: float) -> list[str]:
    """About five round values from ``low`` to ``high`` (a step of 1, 2, 2.5 or 5 times a power of ten)."""
    raw = (high - low) / 4
    power = math.floor(math.log10(raw))
    mult = next(m for m in (1, 2, 2.5, 5, 10) if m * 10.0**power >= raw * 0.6)
    step, places = mult * 10.0**power, max(0, -power + (mult == 2.5) - (mult == 10))
    first = math.ceil(low / step - 1e-9)
    return [f"{k * step:,.{places}f}" for k in range(first, math.floor(high / step + 1e-9) + 1)]


def _chart_svg(x: Any, y: Any, where: Any, label: Callable[[int], str], count: int) -> str:
    import numpy as np

    w, h, left, right, top, bottom = 900.0, 270.0, 70.0, 24.0, 12.0, 30.0
    x0, x1 = float(x[0]), float(x[-1]) if x[-1] > x[0] else float(x[0]) + 1
    labels = _nice_ticks(float(y.min()), float(y.max())) if y.max() > y.min() else [_number(float(y[0]))]
    ticks = {t: float(t.replace(",", "")) for t in labels}
    y0, y1 = min(*ticks.values(), float(y.min())), max(*ticks.values(), float(y.max()))
    y0, y1 = (y0, y1) if y1 > y0 else (y0 - 1, y1 + 1)

    def px(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * (w - left - right)

    def py(v: float) -> float:
        return top + (y1 - v) / (y1 - y0) * (h - top - bottom)

    pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x.tolist(), y.tolist(), strict=True))
    grid = "".join(f'<line x1="{left}" x2="{w - right}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eceef2"/>'
                   f'<text x="{left - 8}" y="{py(t) + 4:.1f}" text-anchor="end">{_e(text)}</text>'
                   for text, t in ticks.items())
    xlab = []  # five labels evenly spaced in x, at the nearest drawn points
    for k in sorted({min(int(np.searchsorted(x, x0 + j * (x1 - x0) / 4)), len(x) - 1) for j in range(5)}):
        anchor = "start" if k == 0 else "end" if k == len(x) - 1 else "middle"
        xlab.append(f'<text x="{px(float(x[k])):.1f}" y="{h - 10}" text-anchor="{anchor}">{_e(label(where[k]))}</text>')
    svg = (f'<svg class="chart" width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}" role="img" '
           f'font-size="11" fill="#4b5563">{grid}<polygon points="{left},{py(y0):.1f} {pts} '
           f'{px(float(x[-1])):.1f},{py(y0):.1f}" fill="#2563eb" fill-opacity="0.07"/><polyline points="{pts}" '
           f'fill="none" stroke="#2563eb" stroke-width="1.6" stroke-linejoin="round"/><line x1="{left}" '
           f'x2="{w - right}" y1="{h - bottom}" y2="{h - bottom}" stroke="#9ca3af"/>{"".join(xlab)}</svg>')
    lo, hi = int(y.argmin()), int(y.argmax())
    drawn = f" ({len(x):,} drawn)" if len(x) < count else ""
    facts = (f"{count:,} points{drawn} · {label(where[0])} → {label(where[-1])} · first {_number(float(y[0]))} · "
             f"last {_number(float(y[-1]))} · min {_number(float(y[lo]))} ({label(where[lo])}) · "
             f"max {_number(float(y[hi]))} ({label(where[hi])})")
    return f'{svg}<p class="muted">{_e(facts)}</p>'
