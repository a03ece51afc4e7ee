"""``BacktestContext``: what a backtest produced, plus the metrics computed from it. Pandas-free to import.

The series and frames it holds are pandas objects, but this module only names their types for the type
checker, so registering the plugin (which needs this class for the merge hook) imports no pandas.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from stagekit import FrozenMap

if TYPE_CHECKING:
    import pandas as pd


def same(a: Any, b: Any) -> bool:
    """Type-aware equality: identity, then ``.equals`` for pandas objects, then ``==``; NaN equals NaN."""
    if a is b:
        return True
    if a is None or b is None or type(a) is not type(b):
        return False
    equals = getattr(a, "equals", None)
    if callable(equals):
        return bool(equals(b))
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. arrays: ambiguous truth value
        return False


def _metrics(values: Mapping[str, float]) -> FrozenMap[str, float]:
    return FrozenMap({str(k): float(v) for k, v in values.items()})


def _notes(values: Iterable[str]) -> tuple[str, ...]:
    notes = tuple(values)
    if not all(isinstance(n, str) for n in notes):
        raise TypeError(f"notes must be strings, got {notes!r}")
    return notes


# fields holding pandas objects are compared with `same` and left out of the hash
_SAME = attrs.cmp_using(eq=same)


@attrs.frozen
class BacktestContext:
    """A backtest's results. Every series is indexed by date from the first rebalance on.

    weights
        target weights (DataFrame: rebalance dates x symbols); the row dated ``d`` is held from ``d``'s
        return on and was decided with data up to the day before ``d``.
    gross_returns, costs, returns
        daily portfolio return before costs, the cost charged that day (a fraction of the portfolio's value),
        and the net return ``(1 - cost) * (1 + gross) - 1``.
    equity
        the net equity curve, starting from 1.0 before the first day.
    turnover
        two-sided turnover ``sum |w_target - w_drifted|`` at each rebalance (Series by rebalance date).
    metrics, notes
        metric name -> value (filled by the metric stages), and what each stage did.
    """

    weights: pd.DataFrame | None = attrs.field(default=None, eq=_SAME, hash=False, repr=False)
    gross_returns: pd.Series | None = attrs.field(default=None, eq=_SAME, hash=False, repr=False)
    costs: pd.Series | None = attrs.field(default=None, eq=_SAME, hash=False, repr=False)
    returns: pd.Series | None = attrs.field(default=None, eq=_SAME, hash=False, repr=False)
    equity: pd.Series | None = attrs.field(default=None, eq=_SAME, hash=False, repr=False)
    turnover: pd.Series | None = attrs.field(default=None, eq=_SAME, hash=False, repr=False)
    cost_bps: float = 0.0
    metrics: FrozenMap[str, float] = attrs.field(factory=FrozenMap, converter=_metrics)
    notes: tuple[str, ...] = attrs.field(default=(), converter=_notes)

    def with_metrics(self, values: Mapping[str, float], *, stage: str) -> BacktestContext:
        """A copy with these metrics set and a note saying which stage computed them."""
        names = ", ".join(values)
        return attrs.evolve(
            self, metrics={**self.metrics, **values}, notes=(*self.notes, f"{stage}: computed {names}")
        )


# the results a backtest run produces; the metric stages leave them untouched
DATA_FIELDS: tuple[str, ...] = (
    "weights", "gross_returns", "costs", "returns", "equity", "turnover", "cost_bps"
)
