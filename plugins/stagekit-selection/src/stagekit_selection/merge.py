"""Three-way merge of ``SelectionContext`` values produced by parallel branches. Pandas-free.

``merge_selection(base, branches)``: ``base`` is the selection before the branches forked (None: empty),
``branches`` each branch's selection in the runner's canonical order. Field by field:

universe
    Three-way replace: unchanged by every branch -> base; changed by some branches -> their value if they all
    agree; two different new universes -> ``MergeConflictError``.
candidates (symbol -> score)
    Per symbol, a branch *changed* it if its score differs from the base (or it added / dropped the symbol).
    Changed by no branch -> base score. Changed by branches -> **base + the sum of their deltas** (an absent
    base counts as 0): scores are additive contributions, so two scorers that each add to a symbol both
    count, whatever order they ran in. Dropped by one branch while another changed it -> conflict; dropped by
    every branch that touched it -> dropped.
rejections (symbol -> reasons)
    A grow-only union: a symbol rejected by the base or by any branch is rejected. Its reasons are the base's,
    then each branch's new reasons in branch order, each reason once. A branch that withdraws a rejection
    present before the fork is a conflict: a union cannot honour it without silently undoing that branch.
audit
    Append-only: the base's entries, then each branch's new entries in branch order. A branch whose log does
    not start with the base's log rewrote history: a conflict.

The merged value is checked like any ``SelectionContext`` (e.g. a candidate outside a narrowed universe is a
conflict). The result depends only on ``base`` and the branches' order, never on timing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from stagekit import MergeConflictError
from stagekit_selection.context import AuditEntry, SelectionContext


def merge_selection(base: SelectionContext | None, branches: Sequence[SelectionContext]) -> SelectionContext:
    """Combine parallel refinements of one selection (rules in the module docstring)."""
    for i, branch in enumerate(branches):
        if not isinstance(branch, SelectionContext):
            raise MergeConflictError(
                f"branch {i} produced a {type(branch).__name__}, not a SelectionContext", path=["selection"]
            )
    root = base if base is not None else SelectionContext()
    if not branches:
        return root
    universe = _merge_universe(root.universe, [b.universe for b in branches])
    candidates = _merge_scores(root.candidates, [dict(b.candidates) for b in branches])
    rejections = _merge_rejections(root.rejections, [dict(b.rejections) for b in branches])
    audit = _merge_audit(root.audit, [b.audit for b in branches])
    try:
        return SelectionContext(universe=universe, candidates=candidates, rejections=rejections, audit=audit)
    except (TypeError, ValueError) as exc:
        raise MergeConflictError(f"the merged selection is inconsistent: {exc}") from exc


def _merge_universe(base: tuple[str, ...], values: list[tuple[str, ...]]) -> tuple[str, ...]:
    changed = [(i, v) for i, v in enumerate(values) if v != base]
    if not changed:
        return base
    first_i, first = changed[0]
    for i, value in changed[1:]:
        if value != first:
            raise MergeConflictError(
                f"branches {first_i} and {i} changed the universe differently "
                f"({_short(first)} vs {_short(value)})",
                path=["universe"],
            )
    return first


def _merge_scores(base: Mapping[str, float], values: list[dict[str, float]]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for symbol in _keys_in_order(base, values):
        before = base.get(symbol)
        changed = [(i, v.get(symbol)) for i, v in enumerate(values) if v.get(symbol) != before]
        if not changed:
            if before is not None:
                merged[symbol] = before
            continue
        dropped = [i for i, value in changed if value is None]
        if dropped and len(dropped) < len(changed):
            kept = [i for i, value in changed if value is not None]
            raise MergeConflictError(
                f"branch {dropped[0]} dropped candidate {symbol!r} while branch {kept[0]} changed its score",
                path=["candidates", symbol],
            )
        if dropped:
            continue
        start = 0.0 if before is None else before
        merged[symbol] = math.fsum([start, *(value - start for _, value in changed if value is not None)])
    return merged


def _merge_rejections(
    base: Mapping[str, tuple[str, ...]], values: list[dict[str, tuple[str, ...]]]
) -> dict[str, tuple[str, ...]]:
    for i, value in enumerate(values):
        withdrawn = [s for s in base if s not in value]
        if withdrawn:
            raise MergeConflictError(
                f"branch {i} withdrew the rejection of {sorted(withdrawn)[:5]} made before the fork; "
                "rejections only grow across parallel branches",
                path=["rejections", withdrawn[0]],
            )
    merged: dict[str, tuple[str, ...]] = {}
    for symbol in _keys_in_order(base, values):
        reasons: list[str] = list(base.get(symbol, ()))
        for value in values:
            reasons.extend(r for r in value.get(symbol, ()) if r not in reasons)
        merged[symbol] = tuple(reasons)
    return merged


def _merge_audit(base: tuple[AuditEntry, ...], values: list[tuple[AuditEntry, ...]]) -> list[AuditEntry]:
    merged = list(base)
    for i, value in enumerate(values):
        if value[: len(base)] != base:
            raise MergeConflictError(
                f"branch {i} rewrote the audit log instead of appending to it", path=["audit"]
            )
        merged.extend(value[len(base):])
    return merged


def _keys_in_order(base: Iterable[str], values: Iterable[Iterable[str]]) -> list[str]:
    """The base's keys, then keys new in each branch, in branch order; each once."""
    seen = dict.fromkeys(base)
    for value in values:
        seen.update(dict.fromkeys(value))
    return list(seen)


def _short(value: tuple[str, ...]) -> str:
    text = ", ".join(value[:5]) + (", ..." if len(value) > 5 else "")
    return f"{len(value)} symbols: {text}"
