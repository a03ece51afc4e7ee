"""Three-way merge of ``BacktestContext`` values produced by parallel branches. Pandas-free.

``merge_backtest(base, branches)``: ``base`` is the context before the branches forked (None: empty),
``branches`` each branch's context in the runner's canonical order.

results (weights, returns, equity, turnover, costs, cost_bps)
    Three-way replace, compared type-aware (``DataFrame.equals``): unchanged -> base; changed by branches
    that agree -> their value; changed differently by two branches -> ``MergeConflictError``. The metric
    stages never change them, so they pass through untouched.
metrics
    Key-level three-way union: a metric set by one branch is taken; set by several to the same value (NaN
    equals NaN) is taken; set to different values is a conflict naming the metric; removed by one branch
    while another changed it is a conflict.
notes
    Append-only: the base's notes, then each branch's new notes in branch order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stagekit import MergeConflictError
from stagekit_backtest.context import DATA_FIELDS, BacktestContext, same


def merge_backtest(base: BacktestContext | None, branches: Sequence[BacktestContext]) -> BacktestContext:
    """Combine parallel refinements of one backtest (rules in the module docstring)."""
    for i, branch in enumerate(branches):
        if not isinstance(branch, BacktestContext):
            raise MergeConflictError(f"branch {i} produced a {type(branch).__name__}, not a BacktestContext")
    root = base if base is not None else BacktestContext()
    if not branches:
        return root
    fields = {name: _replace(name, getattr(root, name), [getattr(b, name) for b in branches])
              for name in DATA_FIELDS}
    metrics = _merge_metrics(root.metrics, [b.metrics for b in branches])
    notes = _merge_notes(root.notes, [b.notes for b in branches])
    return BacktestContext(**fields, metrics=metrics, notes=notes)


def _replace(name: str, before: Any, values: list[Any]) -> Any:
    changed = [(i, v) for i, v in enumerate(values) if not same(v, before)]
    if not changed:
        return before
    first_i, first = changed[0]
    for i, value in changed[1:]:
        if not same(value, first):
            raise MergeConflictError(
                f"branches {first_i} and {i} both changed {name} to different values", path=[name]
            )
    return first


def _merge_metrics(before: Mapping[str, float], values: list[Mapping[str, float]]) -> dict[str, float]:
    merged: dict[str, float] = {}
    keys = dict.fromkeys(before)
    for branch in values:
        keys.update(dict.fromkeys(branch))
    for key in keys:
        old = before.get(key)
        changed = [(i, v.get(key)) for i, v in enumerate(values) if not same(v.get(key), old)]
        if not changed:
            if old is not None:
                merged[key] = old
            continue
        first_i, first = changed[0]
        for i, value in changed[1:]:
            if not same(value, first):
                what = "removed" if value is None or first is None else "set"
                raise MergeConflictError(
                    f"branches {first_i} and {i} {what} metric {key!r} differently ({first!r} vs {value!r})",
                    path=["metrics", key],
                )
        if first is not None:
            merged[key] = first
    return merged


def _merge_notes(before: tuple[str, ...], values: list[tuple[str, ...]]) -> list[str]:
    merged = list(before)
    for i, value in enumerate(values):
        if value[: len(before)] != before:
            raise MergeConflictError(f"branch {i} rewrote the notes instead of appending", path=["notes"])
        merged.extend(value[len(before):])
    return merged
