"""Plain-text rendering for the CLI: tables, graphs, run summaries, what a run would do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stagekit._text import table
from stagekit.graph.dag import INITIAL, Dag
from stagekit.report.format import duration


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


def status(record: Any) -> str:
    """A stage's status as the CLI shows it: "cached (saved 3.20 s)" for one reused from the run store."""
    if record.status == "cached":
        return f"cached (saved {duration(record.saved)})"
    return str(record.status)


def run_summary(result: Any) -> str:
    """The per-stage table after a run, and one line: how many stages were ok (how many ran and how many were
    cached, and the time those saved), the run's time, its artifacts. A run in a workspace says why each ran."""
    records = list(result.stages.values())
    why = any(r.reason for r in records)
    rows = [[r.name, r.plugin or "-", status(r), "-" if r.status == "cached" else f"{r.duration * 1000:.1f} ms",
             ", ".join(r.provided) or "-", *([r.reason or ""] if why else [])] for r in records]
    head = table(["stage", "plugin", "status", "time", "provided", *(["reason"] if why else [])], rows, rule=True)
    ok = sum(r.status == "ok" for r in records)
    cached = [r for r in records if r.status == "cached"]
    count = f"{ok}/{len(records)} stages ok" if not cached else (
        f"{ok + len(cached)}/{len(records)} stages ok ({ok} ran, {len(cached)} cached, saved "
        f"{duration(sum(r.saved for r in cached))})")
    return (f"{head}\n\nrun {result.run_id}: {count} in {result.duration:.2f} s ({result.executor}); "
            f"artifacts: {', '.join(a for a in sorted(result.artifacts) if a != INITIAL)}")


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


# --- explain: what a run would do --------------------------------------------------------------------------

_NO_WORKSPACE = ("not in a workspace: runs are not recorded and nothing is cached (--workspace DIR, "
                 "$STAGEKIT_WORKSPACE, or a folder holding .stagekit)")


def explain(decisions: Sequence[Any], *, workspace: Path | None = None,
            provides: Mapping[str, Sequence[str]] | None = None) -> str:
    """One row per stage (stage, action, reason, time saved), then "3 of 12 stages would run; 9 cached
    (saves 41.2 s)". ``provides`` (by stage) lets a missing stage's row name what is missing."""
    rows = [[d.stage, d.action, _reason(d, provides), duration(d.saved) if d.action == "cached" else "-"]
            for d in decisions]
    lines = [table(["stage", "action", "reason", "saves"], rows, rule=True), "", explain_line(decisions)]
    if workspace is None:
        lines.append(_NO_WORKSPACE)
    return "\n".join(lines)


def _reason(decision: Any, provides: Mapping[str, Sequence[str]] | None) -> str:
    """Why, as the run store says; for a missing stage (not selected, and not stored for the current inputs)
    what the selection lacks too."""
    why = str(decision.reason or "")
    made = (provides or {}).get(decision.stage)
    if decision.action != "missing" or not made:
        return why
    return f"not selected, and {', '.join(map(repr, made))} not stored for the current inputs ({why})"


def explain_line(decisions: Sequence[Any]) -> str:
    run = sum(d.action == "run" for d in decisions)
    cached = [d for d in decisions if d.action == "cached"]
    missing = [d for d in decisions if d.action == "missing"]
    line = f"{run} of {len(decisions)} stage{'s' if len(decisions) != 1 else ''} would run; " + (
        f"{len(cached)} cached (saves {duration(sum(d.saved for d in cached))})" if cached else "none cached")
    if missing:
        line += (f"; {len(missing)} missing ({', '.join(d.stage for d in missing)}): the run would stop before "
                 "any stage runs")
    return line


def explain_json(decisions: Sequence[Any], *, pipeline: str, workspace: Path | None,
                 provides: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    cached = [d for d in decisions if d.action == "cached"]
    return {
        "pipeline": pipeline, "workspace": None if workspace is None else str(workspace),
        "stages": [{"stage": d.stage, "action": d.action, "reason": _reason(d, provides), "saved": round(d.saved, 6)}
                   for d in decisions],
        "run": sum(d.action == "run" for d in decisions), "cached": len(cached),
        "missing": sum(d.action == "missing" for d in decisions), "saved": round(sum(d.saved for d in cached), 6),
    }
