"""The selection stages' functions. Imports pandas; ``plugin.py`` names them lazily as ``"module:attr"``.

Artifacts arrive as keyword arguments, and so do params (the defaults here match the params that
``plugin.py`` declares; a test checks it). Every refining stage returns a new ``SelectionContext`` and
leaves a line in its audit log; rejection reasons start with the stage's name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from stagekit_selection import features
from stagekit_selection.context import SelectionContext

if TYPE_CHECKING:
    import pandas as pd


# --- creator and features ----------------------------------------------------------------------------


def seed_selection(
    returns: pd.DataFrame, min_history: int = 252, as_of: str | None = None
) -> SelectionContext:
    """Start a selection: the universe is every symbol with ``min_history`` returns or more, each scored 0."""
    r = features.upto(returns, as_of, artifact="returns")
    counts = r.count()
    universe = [str(s) for s in counts.index[counts >= min_history]]
    last = r.index[-1].date().isoformat() if len(r) else "no data"
    ctx = SelectionContext(universe=universe, candidates=dict.fromkeys(universe, 0.0))
    return ctx.log(
        "seed_selection", "seed",
        f"{len(universe)} of {r.shape[1]} symbols have >= {min_history} returns up to {last}",
    )


def momentum_feature(
    returns: pd.DataFrame, lookback: int = 252, skip: int = 21, min_fraction: float = 0.8,
    as_of: str | None = None,
) -> pd.Series:
    """12-1 month momentum per symbol."""
    return features.momentum(returns, lookback=lookback, skip=skip, min_fraction=min_fraction, as_of=as_of)


def volatility_feature(
    returns: pd.DataFrame, lookback: int = 63, min_periods: int = 20, periods_per_year: int = 252,
    as_of: str | None = None,
) -> pd.Series:
    """Annualised volatility per symbol."""
    return features.volatility(
        returns, lookback=lookback, min_periods=min_periods, periods_per_year=periods_per_year, as_of=as_of
    )


def liquidity_feature(
    volume: pd.DataFrame, lookback: int = 63, min_periods: int = 20, as_of: str | None = None
) -> pd.Series:
    """Median daily volume per symbol."""
    return features.liquidity(volume, lookback=lookback, min_periods=min_periods, as_of=as_of)


# --- refining branches (updaters of `selection`) -----------------------------------------------------


def _feature(values: pd.Series, symbols: tuple[str, ...], name: str) -> pd.Series:
    import pandas as pd

    if not isinstance(values, pd.Series):
        raise TypeError(f"artifact {name!r} must be a Series indexed by symbol, got {type(values).__name__}")
    return values.set_axis([str(s) for s in values.index]).reindex(list(symbols)).astype("float64")


def momentum_rank(selection: SelectionContext, momentum: pd.Series, weight: float = 1.0) -> SelectionContext:
    """Add ``weight`` x the percentile rank of momentum (in (0, 1]) to each eligible symbol's score.

    Symbols without a momentum value cannot be ranked and are rejected.
    """
    m = _feature(momentum, selection.eligible, "momentum")
    missing = m.index[m.isna()]
    ranks = m.dropna().rank(pct=True, method="average") * weight
    ctx = selection
    if len(missing):
        ctx = ctx.reject(
            dict.fromkeys(missing, "momentum_rank: no momentum value (too little history)"),
            stage="momentum_rank", detail=f"{len(missing)} symbols without momentum",
        )
    return ctx.add_scores(
        {str(s): float(x) for s, x in ranks.items()}, stage="momentum_rank",
        detail=f"added {weight:g} x momentum percentile to {len(ranks)} symbols",
    )


def volatility_filter(
    selection: SelectionContext, volatility: pd.Series, quantile: float | None = 0.9,
    max_volatility: float | None = None,
) -> SelectionContext:
    """Reject eligible symbols more volatile than the ``quantile`` of volatility (or ``max_volatility``)."""
    v = _feature(volatility, selection.eligible, "volatility")
    limits = [float(v.quantile(quantile))] if quantile is not None and v.notna().any() else []
    limits += [max_volatility] if max_volatility is not None else []
    limit = min(limits) if limits else np.inf
    reasons = {s: "volatility_filter: no volatility estimate" for s in v.index[v.isna()]}
    reasons |= {
        s: f"volatility_filter: annualised volatility {x:.4f} above {limit:.4f}"
        for s, x in v[v > limit].items()
    }
    return selection.reject(
        reasons, stage="volatility_filter", detail=f"rejected {len(reasons)} of {len(v)} above {limit:.4f}"
    )


def liquidity_filter(
    selection: SelectionContext, liquidity: pd.Series, quantile: float | None = 0.2,
    min_liquidity: float = 0.0,
) -> SelectionContext:
    """Reject eligible symbols whose liquidity is below its ``quantile`` (and below ``min_liquidity``)."""
    x = _feature(liquidity, selection.eligible, "liquidity")
    floor = float(x.quantile(quantile)) if quantile is not None and x.notna().any() else -np.inf
    floor = max(floor, min_liquidity)
    reasons = {s: "liquidity_filter: no volume data" for s in x.index[x.isna()]}
    reasons |= {
        s: f"liquidity_filter: median volume {v:.6g} below {floor:.6g}" for s, v in x[x < floor].items()
    }
    return selection.reject(
        reasons, stage="liquidity_filter", detail=f"rejected {len(reasons)} of {len(x)} below {floor:.6g}"
    )


def correlation_cluster(
    selection: SelectionContext, returns: pd.DataFrame, momentum: pd.Series, threshold: float = 0.7,
    keep: int = 2, lookback: int = 252, min_periods: int = 126, as_of: str | None = None,
) -> SelectionContext:
    """Cluster eligible symbols by return correlation; reject all but the ``keep`` best per cluster.

    Leader clustering, best momentum first: a symbol joins the cluster of the leader it is most correlated
    with if that correlation is >= ``threshold``, else it leads a new cluster. "Best" is momentum (the signal
    ``momentum_rank`` scores, which this branch cannot see since it runs beside it); ties by symbol.
    """
    if keep < 1:
        raise ValueError(f"correlation_cluster: keep must be >= 1, got {keep}")
    symbols = selection.eligible
    m = _feature(momentum, symbols, "momentum")
    order = sorted(symbols, key=lambda s: (np.isnan(m[s]), -np.nan_to_num(m[s]), s))
    r = features.upto(returns, as_of, artifact="returns").reindex(columns=order).iloc[-lookback:]
    corr = np.nan_to_num(features.pairwise_corr(r.to_numpy(), min_periods), nan=0.0)
    leader_of = _leaders(corr, threshold)
    members: dict[int, int] = {}
    reasons: dict[str, str] = {}
    for i, lead in enumerate(leader_of):
        members[lead] = members.get(lead, 0) + 1
        if members[lead] > keep:
            reasons[order[i]] = (
                f"correlation_cluster: correlation {corr[i, lead]:.3f} with {order[lead]} >= {threshold}; "
                f"its cluster keeps the {keep} with the best momentum"
            )
    return selection.reject(
        reasons, stage="correlation_cluster",
        detail=f"{len(members)} clusters among {len(order)} symbols; rejected {len(reasons)}",
    )


def _leaders(corr: np.ndarray, threshold: float) -> list[int]:
    """For each row (in priority order) the index of its cluster's leader."""
    leaders: list[int] = []
    leader_of: list[int] = []
    for i in range(corr.shape[0]):
        if leaders:
            to_leaders = corr[i, leaders]
            best = int(np.argmax(to_leaders))
            if to_leaders[best] >= threshold:
                leader_of.append(leaders[best])
                continue
        leaders.append(i)
        leader_of.append(i)
    return leader_of


# --- reader ------------------------------------------------------------------------------------------


def finalize_selection(selection: SelectionContext, top_n: int = 20) -> tuple[str, ...]:
    """The portfolio: the ``top_n`` eligible symbols by score (ties by symbol)."""
    chosen = selection.top(top_n)
    if not chosen:
        raise ValueError(
            f"finalize_selection: no eligible symbol left ({len(selection.candidates)} candidates, "
            f"{len(selection.rejections)} rejected)"
        )
    return chosen
