"""The report's pipeline section: the DAG as inline SVG, one box per stage coloured by status, with its time
and its share of the total stage time (a cached stage: the time it saved); the slowest stages outlined.
``dag_layout`` decides where boxes go."""

from __future__ import annotations

import itertools
from html import escape
from typing import TYPE_CHECKING

from stagekit.report.dag_layout import AFTER, BOX_H, BOX_W, is_placeholder, layout
from stagekit.report.format import cell, duration, first_line

if TYPE_CHECKING:
    from stagekit.graph.dag import Dag
    from stagekit.records import RunResult, StageRecord

__all__ = ["dag_section"]

_SLOWEST = 3  # how many of the slowest stages are highlighted
_ARROW = ('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
          'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#7c8596"/></marker></defs>')


def dag_section(result: RunResult, dag: Dag) -> str:
    legend = ('<p class="legend"><i style="background:#effcf3;border:1px solid #22a559"></i>ok'
              '<i style="background:#eff6ff;border:1px solid #3b82f6"></i>cached (reused from the run store)'
              '<i style="background:#fef1f1;border:1px solid #dc2626"></i>failed'
              '<i style="background:#f4f4f5;border:1px dashed #a1a1aa"></i>cancelled'
              f'<i style="background:#fff;border:2px solid #ea7a0c"></i>the {_SLOWEST} slowest stages'
              " · bars: share of the total stage time · hover over a box or an edge for details</p>")
    return f'<section id="dag"><h2>Pipeline</h2><div class="scroll">{_dag_svg(result, dag)}</div>{legend}</section>'


def _dag_svg(result: RunResult, dag: Dag) -> str:
    lay = layout(dag)
    exits = {n: _ports(n, lay.succs[n], lay.cx) for n in lay.cx}
    entries = {n: _ports(n, lay.preds[n], lay.cx) for n in lay.cx}
    edges = [f'<path class="edge{" after" if label == AFTER else ""}" '
             f'd="{_edge_path(hops, lay.top, exits, entries)}" '
             f'marker-end="url(#arrow)"><title>{escape(f"{src} → {dst}: {label}")}</title></path>'
             for src, dst, label, hops in lay.routes]
    total = sum(r.duration for r in result.stages.values()) or 1.0
    slow = _slowest(result)
    nodes = []
    for name in dag.order:
        rec = result.stages.get(name)
        share = rec.duration / total if rec is not None else 0.0
        nodes.append(_node_svg(name, dag, rec, lay.cx[name] - BOX_W / 2, lay.top[name], share, name in slow))
    w, h = f"{lay.width:.0f}", f"{lay.height:.0f}"
    return (f'<svg class="dag" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'role="img" aria-label="pipeline graph">{_ARROW}<g class="edges">{"".join(edges)}</g>'
            f'<g class="nodes">{"".join(nodes)}</g></svg>')


def _slowest(result: RunResult) -> set[str]:
    ranked = sorted((r for r in result.stages.values() if r.duration > 0), key=lambda r: -r.duration)
    return {r.name for r in ranked[:_SLOWEST]}


def _ports(node: str, others: list[str], cx: dict[str, float]) -> dict[str, float]:
    """Where each edge leaves or enters a box: spread along its middle in the order of the other ends."""
    if is_placeholder(node) or len(others) < 2:
        return {m: cx[node] for m in others}
    step = min(16.0, BOX_W * 0.7 / (len(others) - 1))
    ranked = sorted(others, key=cx.__getitem__)
    return {m: cx[node] + (k - (len(ranked) - 1) / 2) * step for k, m in enumerate(ranked)}


def _edge_path(hops: list[str], top: dict[str, float], exits: dict[str, dict[str, float]],
               entries: dict[str, dict[str, float]]) -> str:
    """Vertical curves from layer to layer, straight down through each placeholder."""
    parts: list[str] = []
    for a, b in itertools.pairwise(hops):
        x0, y0 = exits[a][b], top[a] + BOX_H
        x1, y1 = entries[b][a], top[b] - (0 if is_placeholder(b) else 2)  # arrow tips stop short of a box
        mid = (y0 + y1) / 2
        parts.append(f"{'L' if parts else 'M'}{x0:.1f},{y0:.1f} "
                     f"C{x0:.1f},{mid:.1f} {x1:.1f},{mid:.1f} {x1:.1f},{y1:.1f}")
    return " ".join(parts)


def _state(rec: StageRecord | None) -> tuple[str, bool, str]:
    """(status, whether the stage ran, its time as text); a stage without a record is pending, a cached one
    shows the time it saved."""
    status = rec.status if rec is not None else "pending"
    ran = status in ("ok", "failed")
    if rec is not None and status == "cached":
        return status, False, f"cached · saved {duration(rec.saved)}"
    return status, ran, duration(rec.duration) if rec is not None and ran else "not run"


def _tooltip(name: str, dag: Dag, rec: StageRecord | None, share: float) -> str:
    st, (status, ran, time) = dag.stages[name], _state(rec)
    tip = [name, f"plugin: {(rec.plugin if rec else None) or '-'}", f"status: {status}",
           f"time: {time}" + (f" ({share:.0%} of the stage time)" if ran else ""),
           f"requires: {', '.join(st.requires) or '-'}", f"provides: {', '.join(st.provides) or '-'}"]
    if rec is not None and rec.reason:
        tip.append(f"reason: {rec.reason}")
    if rec is not None and rec.error is not None:
        tip.append(f"error: {first_line(rec.error)}")
    return "\n".join(tip)


def _node_svg(name: str, dag: Dag, rec: StageRecord | None, x: float, y: float, share: float, slow: bool) -> str:
    st, (status, ran, time) = dag.stages[name], _state(rec)
    provides = "→ " + ", ".join(st.provides) if st.provides else "(provides nothing)"
    inner, left = BOX_W - 20, x + 10
    return (f'<g class="node {escape(status)}{" slow" if slow else ""}" data-stage="{escape(name)}" '
            f'data-status="{escape(status)}"><title>{escape(_tooltip(name, dag, rec, share))}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W:.0f}" height="{BOX_H:.0f}" rx="7"/>'
            f'<text class="name" x="{left:.1f}" y="{y + 18:.1f}">{escape(cell(name, 24))}</text>'
            f'<text class="art" x="{left:.1f}" y="{y + 32:.1f}">{escape(cell(provides, 32))}</text>'
            f'<text class="time" x="{left:.1f}" y="{y + 46:.1f}">{time}</text>'
            f'<text class="share" x="{x + BOX_W - 10:.1f}" y="{y + 46:.1f}" text-anchor="end">'
            f'{f"{share:.0%}" if ran else ""}</text>'
            f'<rect class="track" x="{left:.1f}" y="{y + 50:.1f}" width="{inner:.0f}" height="3" rx="1.5"/>'
            f'<rect class="bar" x="{left:.1f}" y="{y + 50:.1f}" width="{inner * share:.1f}" height="3" rx="1.5"/>'
            "</g>")
