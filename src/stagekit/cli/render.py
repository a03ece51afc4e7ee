"""Plain-text rendering for the CLI: tables, graphs, run summaries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stagekit._text import table
from stagekit.graph.dag import INITIAL, Dag


def edges(dag: Dag) -> list[tuple[str, str, str]]:
    """The DAG's labelled edges, the initial artifacts drawn as one node named "inputs"."""
    return [(src or "inputs", dst, label) for src, dst, label in dag.labelled_edges()]


def _id(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name) if name != "inputs" else "inputs"


def mermaid(dag: Dag) -> str:
    lines = ["flowchart LR"]
    if dag.initial:
        lines.append('  inputs(["inputs"])')
    for name in dag.order:
        lines.append(f'  {_id(name)}["{name}"]')
    for src, dst, label in edges(dag):
        arrow = f"-- {label} -->" if label else "-.->"
        lines.append(f"  {_id(src)} {arrow} {_id(dst)}")
    return "\n".join(lines)


def dot(dag: Dag) -> str:
    lines = ["digraph pipeline {", "  rankdir=LR;", "  node [shape=box];"]
    if dag.initial:
        lines.append('  "inputs" [shape=ellipse];')
    for name in dag.order:
        lines.append(f'  "{name}";')
    for src, dst, label in edges(dag):
        attrs = f' [label="{label}"]' if label else " [style=dashed]"
        lines.append(f'  "{src}" -> "{dst}"{attrs};')
    lines.append("}")
    return "\n".join(lines)


def run_summary(result: Any) -> str:
    rows = [[r.name, r.plugin or "-", r.status, f"{r.duration * 1000:.1f} ms",
             ", ".join(r.provided) or "-"] for r in result.stages.values()]
    head = table(["stage", "plugin", "status", "time", "provided"], rows, rule=True)
    ok = sum(r.status == "ok" for r in result.stages.values())
    return (f"{head}\n\nrun {result.run_id}: {ok}/{len(result.stages)} stages ok in {result.duration:.2f} s "
            f"({result.executor}); artifacts: {', '.join(a for a in sorted(result.artifacts) if a != INITIAL)}")


def scalar_tables(artifacts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Artifacts that are small mappings of numbers or strings (e.g. metrics), each as a two-column table."""
    tables = []
    for name, value in artifacts.items():
        if not isinstance(value, Mapping) or not value or len(value) > 40:
            continue
        if not all(isinstance(v, int | float | str | bool) for v in value.values()):
            continue
        rows = [[k, f"{v:.6g}" if isinstance(v, float) else v] for k, v in value.items()]
        tables.append((name, table(["name", "value"], rows, rule=True)))
    return tables
