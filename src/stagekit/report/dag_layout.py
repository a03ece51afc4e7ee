"""Where each box of the DAG goes, top to bottom: geometry only, no SVG (``dag_svg`` draws it).

Layer = the longest path from a source; a long edge passes one placeholder per layer it crosses, shared by
the edges of one source so they bundle; barycentre sweeps order each layer to reduce crossings, and a last
placement keeps the boxes of a layer apart.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from stagekit.graph.dag import Dag

__all__ = ["AFTER", "BOX_H", "BOX_W", "Layout", "is_placeholder", "layout"]

BOX_W, BOX_H = 184.0, 58.0  # a stage's box
_PLACEHOLDER_W = 12.0  # a long edge's stand-in in a layer it crosses
_GAP, _PLACEHOLDER_GAP = 22.0, 8.0  # between neighbours in a layer; placeholders bundle closer
_LAYER_GAP, _MARGIN = 54.0, 14.0
AFTER = "(after)"  # the label of an edge that carries no artifact, only an ``after`` order

Neighbours = dict[str, list[str]]


class Layout(NamedTuple):
    layers: list[list[str]]  # stages and placeholders ("\0source\0layer"), top to bottom
    cx: dict[str, float]  # the centre x of every node
    top: dict[str, float]  # the top y of every node
    preds: Neighbours  # neighbours in the layer above / below: edges join adjacent layers only
    succs: Neighbours
    routes: list[tuple[str, str, str, list[str]]]  # (source, target, artifacts, every node the edge passes)
    width: float  # of the whole drawing, margins included
    height: float


def is_placeholder(node: str) -> bool:
    return node.startswith("\0")


def _node_width(node: str) -> float:
    return _PLACEHOLDER_W if is_placeholder(node) else BOX_W


def layout(dag: Dag) -> Layout:
    """Every node's layer, order and position, and the route of every edge between two stages."""
    level = _levels(dag)
    layers: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for n in dag.order:
        layers[level[n]].append(n)
    preds: Neighbours = {n: [] for n in dag.order}
    succs: Neighbours = {n: [] for n in dag.order}
    routes = []
    for (src, dst), labels in _edge_labels(dag).items():
        hops = [src, *(f"\0{src}\0{k}" for k in range(level[src] + 1, level[dst])), dst]
        for k, (a, b) in enumerate(itertools.pairwise(hops)):
            if b not in preds:  # a placeholder not yet placed by another edge of the same source
                preds[b], succs[b] = [], []
                layers[level[src] + k + 1].append(b)
            if b not in succs[a]:
                succs[a].append(b)
                preds[b].append(a)
        routes.append((src, dst, ", ".join(x for x in labels if x) or AFTER, hops))
    _order(layers, preds, succs)
    cx = _place(layers, preds, succs)
    top = {n: _MARGIN + i * (BOX_H + _LAYER_GAP) for i, row in enumerate(layers) for n in row}
    canvas_w = max((x + _node_width(n) / 2 for n, x in cx.items()), default=0.0) + _MARGIN
    canvas_h = max(len(layers) * (BOX_H + _LAYER_GAP) - _LAYER_GAP, 0) + 2 * _MARGIN
    return Layout(layers, cx, top, preds, succs, routes, canvas_w, canvas_h)


def _levels(dag: Dag) -> dict[str, int]:
    """The longest path from a source (iteratively, in topological order)."""
    level: dict[str, int] = {}
    for n in dag.order:
        level[n] = max((level[p] + 1 for p in dag.deps[n]), default=0)
    for n in dag.order:  # a stage that waits for nothing sits just above its first consumer
        if not dag.deps[n] and dag.successors[n]:
            level[n] = min(level[s] for s in dag.successors[n]) - 1
    return level


def _edge_labels(dag: Dag) -> dict[tuple[str, str], list[str]]:
    """The artifacts each edge between two stages carries ("" for an ``after`` edge)."""
    labels: dict[tuple[str, str], list[str]] = {}
    for src, dst, label in dag.labelled_edges():
        if src in dag.stages:  # not the initial artifacts' pseudo-stage
            labels.setdefault((src, dst), []).append(label)
    return labels


def _order(layers: list[list[str]], preds: Neighbours, succs: Neighbours) -> None:
    """Fewer crossings: sort each layer by the mean position of its neighbours; down, up, down, up."""
    for sweep in range(4):
        down = sweep % 2 == 0
        near = preds if down else succs
        for i in range(1, len(layers)) if down else range(len(layers) - 2, -1, -1):
            pos = {n: k for k, n in enumerate(layers[i - 1] if down else layers[i + 1])}
            keys = {n: sum(pos[m] for m in near[n]) / len(near[n]) if near[n] else float(k)
                    for k, n in enumerate(layers[i])}
            layers[i].sort(key=keys.__getitem__)


def _separation(a: str, b: str) -> float:
    """The distance between the centres of neighbours ``a`` and ``b`` in a layer."""
    gap = _PLACEHOLDER_GAP if is_placeholder(a) and is_placeholder(b) else _GAP
    return (_node_width(a) + _node_width(b)) / 2 + gap


def _place(layers: list[list[str]], preds: Neighbours, succs: Neighbours) -> dict[str, float]:
    """Each node wants the mean x of its neighbours; the mean of a left-packed and a right-packed placement
    keeps the order and the spacing, so two boxes of a layer never overlap."""
    cx: dict[str, float] = {}
    for row in layers:  # start centred, packed
        offsets = list(itertools.accumulate((_separation(a, b) for a, b in itertools.pairwise(row)), initial=0.0))
        cx.update((n, x - offsets[-1] / 2) for n, x in zip(row, offsets, strict=True))
    for sweep in range(5):
        near = preds if sweep % 2 == 0 else succs
        for row in layers if sweep % 2 == 0 else reversed(layers):
            want = [sum(cx[m] for m in near[n]) / len(near[n]) if near[n] else cx[n] for n in row]
            left, right = list(want), list(want)
            for k in range(1, len(row)):
                left[k] = max(want[k], left[k - 1] + _separation(row[k - 1], row[k]))
            for k in range(len(row) - 2, -1, -1):
                right[k] = min(want[k], right[k + 1] - _separation(row[k], row[k + 1]))
            cx.update((n, (a + b) / 2) for n, a, b in zip(row, left, right, strict=True))
    low = min((x - _node_width(n) / 2 for n, x in cx.items()), default=0.0)
    return {n: x - low + _MARGIN for n, x in cx.items()}
