"""Each selection stage on tiny, hand-checked frames (stages are called directly: a Stage is callable)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
from stagekit_selection import SelectionContext, features, merge_selection
from stagekit_selection.plugin import selection_stages

STAGES = {s.name: s for s in selection_stages()}


def frame(data: Mapping[str, Any], start: str = "2024-01-01") -> pd.DataFrame:
    n = len(next(iter(data.values())))
    return pd.DataFrame(data, index=pd.bdate_range(start, periods=n), dtype="float64")


def ctx(symbols: str, rejected: dict[str, str] | None = None) -> SelectionContext:
    universe = tuple(symbols)
    return SelectionContext(
        universe=universe, candidates=dict.fromkeys(universe, 0.0), rejections=rejected or {}
    )


# --- creator and features ----------------------------------------------------------------------------


def test_seed_selection_keeps_symbols_with_enough_history() -> None:
    nan = float("nan")
    returns = frame({"A": [0.01] * 5, "B": [nan, 0.01, 0.02, 0.0, 0.01], "C": [nan, nan, nan, 0.01, 0.01]})
    seeded = STAGES["seed_selection"](returns=returns, min_history=4)
    assert seeded.universe == ("A", "B")
    assert seeded.candidates == {"A": 0.0, "B": 0.0}
    assert not seeded.rejections
    assert seeded.audit[0].stage == "seed_selection"
    assert "2 of 3 symbols" in seeded.audit[0].detail
    # as_of drops later rows: up to the 4th date, B has 3 returns only
    assert STAGES["seed_selection"](returns=returns, min_history=4, as_of="2024-01-04").universe == ("A",)


def test_momentum_feature_compounds_the_window_and_skips_the_latest_days() -> None:
    nan = float("nan")
    returns = frame({
        "A": [0.5, 0.10, 0.20, -0.10, 0.9],   # window = days 2..4 (lookback 4, skip 1)
        "B": [0.0, nan, nan, 0.05, 0.0],      # 1 of 3 observations: below min_fraction
    })
    m = STAGES["momentum_feature"](returns=returns, lookback=4, skip=1, min_fraction=0.6)
    assert m["A"] == pytest.approx(1.10 * 1.20 * 0.90 - 1)
    assert math.isnan(m["B"])
    assert m.name == "momentum"
    with pytest.raises(ValueError, match="skip < lookback"):
        STAGES["momentum_feature"](returns=returns, lookback=2, skip=2)


def test_volatility_feature_is_annualised_sample_std() -> None:
    returns = frame({"A": [0.5, 0.01, -0.01, 0.01, -0.01], "B": [0.0, 0.0, 0.0, 0.0, float("nan")]})
    v = STAGES["volatility_feature"](returns=returns, lookback=4, min_periods=4)
    # mean 0, four deviations of 0.01: var = 4e-4 / 3
    assert v["A"] == pytest.approx(math.sqrt(4e-4 / 3) * math.sqrt(252))
    assert math.isnan(v["B"])  # 3 observations < min_periods


def test_liquidity_feature_is_median_volume() -> None:
    volume = frame({"A": [9e9, 100.0, 300.0, 200.0], "B": [1.0, 2.0, float("nan"), float("nan")]})
    liq = STAGES["liquidity_feature"](volume=volume, lookback=3, min_periods=2)
    assert liq["A"] == 200.0
    assert math.isnan(liq["B"])


def test_features_reject_a_frame_without_dates() -> None:
    with pytest.raises(TypeError, match="artifact 'returns' must be a DataFrame with a DatetimeIndex"):
        STAGES["volatility_feature"](returns=pd.DataFrame({"A": [0.1]}))


# --- refining branches -------------------------------------------------------------------------------


def test_momentum_rank_adds_percentile_and_rejects_missing() -> None:
    momentum = pd.Series({"A": 0.1, "B": 0.3, "C": -0.2, "D": float("nan"), "E": 9.0})
    out = STAGES["momentum_rank"](selection=ctx("ABCDE", {"E": "seed: no"}), momentum=momentum, weight=3.0)
    assert out.candidates == {"A": 2.0, "B": 3.0, "C": 1.0, "D": 0.0, "E": 0.0}
    assert out.rejections["D"] == ("momentum_rank: no momentum value (too little history)",)
    assert out.ranked() == ("B", "A", "C")
    assert [e.action for e in out.audit] == ["reject", "score"]


def test_volatility_filter_rejects_above_quantile_or_cap() -> None:
    vol = pd.Series({"A": 0.1, "B": 0.2, "C": 0.3, "D": 0.4, "E": 0.5})
    default = STAGES["volatility_filter"](selection=ctx("ABCDE"), volatility=vol)
    assert set(default.rejections) == {"E"}  # 0.9 quantile of 0.1..0.5 is 0.46
    assert "above 0.4600" in default.rejections["E"][0]
    median = STAGES["volatility_filter"](selection=ctx("ABCDE"), volatility=vol, quantile=0.5)
    assert set(median.rejections) == {"D", "E"}
    capped = STAGES["volatility_filter"](
        selection=ctx("ABCDE"), volatility=vol, quantile=None, max_volatility=0.15
    )
    assert set(capped.rejections) == {"B", "C", "D", "E"}


def test_volatility_filter_only_looks_at_eligible_symbols() -> None:
    vol = pd.Series({"A": 0.1, "B": 0.2, "C": 5.0})
    out = STAGES["volatility_filter"](selection=ctx("ABC", {"C": "seed: no"}), volatility=vol, quantile=0.5)
    assert out.rejections == {
        "C": ("seed: no",), "B": ("volatility_filter: annualised volatility 0.2000 above 0.1500",)
    }


def test_liquidity_filter_rejects_below_quantile_and_floor() -> None:
    liq = pd.Series({"A": 100.0, "B": 200.0, "C": 300.0, "D": 400.0, "E": 500.0, "F": float("nan")})
    out = STAGES["liquidity_filter"](selection=ctx("ABCDEF"), liquidity=liq, quantile=0.25)
    assert set(out.rejections) == {"A", "F"}  # 0.25 quantile of 100..500 is 200
    assert out.rejections["F"] == ("liquidity_filter: no volume data",)
    floor = STAGES["liquidity_filter"](
        selection=ctx("ABCDE"), liquidity=liq, quantile=0.25, min_liquidity=350.0
    )
    assert set(floor.rejections) == {"A", "B", "C"}


def clustered_returns() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    x, y = rng.normal(0, 0.01, 300), rng.normal(0, 0.01, 300)
    noise = rng.normal(0, 0.001, (3, 300))
    return frame({"A": x, "B": x + noise[0], "C": 2 * x + noise[1], "D": y, "E": y + noise[2]})


def test_correlation_cluster_keeps_the_best_per_cluster() -> None:
    returns = clustered_returns()
    corr = returns.corr().to_numpy()  # rows/columns A..E
    assert corr[0, [1, 2]].min() > 0.95 and corr[3, 4] > 0.95
    assert np.abs(corr[:3, 3:]).max() < 0.3
    momentum = pd.Series({"A": 0.3, "B": 0.2, "C": 0.1, "D": 0.05, "E": 0.4})
    # priority E, A, B, C, D: clusters {E, D} led by E and {A, B, C} led by A
    one = STAGES["correlation_cluster"](selection=ctx("ABCDE"), returns=returns, momentum=momentum,
                                        threshold=0.9, keep=1, min_periods=100)
    assert set(one.rejections) == {"B", "C", "D"}
    assert one.rejections["D"][0].startswith("correlation_cluster: correlation 0.99")
    assert "with E >= 0.9" in one.rejections["D"][0]
    two = STAGES["correlation_cluster"](selection=ctx("ABCDE"), returns=returns, momentum=momentum,
                                        threshold=0.9, keep=2, min_periods=100)
    assert set(two.rejections) == {"C"}
    assert "2 clusters among 5 symbols" in two.audit[-1].detail


def test_correlation_cluster_ignores_rejected_and_uncorrelated() -> None:
    returns = clustered_returns()
    momentum = pd.Series({"A": 0.3, "B": 0.2, "C": 0.1, "D": 0.05, "E": 0.4})
    out = STAGES["correlation_cluster"](selection=ctx("ABCDE", {"A": "seed: no"}), returns=returns,
                                        momentum=momentum, threshold=0.9, keep=1, min_periods=100)
    assert set(out.rejections) == {"A", "C", "D"}  # B now leads the {B, C} cluster
    none = STAGES["correlation_cluster"](selection=ctx("ABCDE"), returns=returns, momentum=momentum,
                                         threshold=0.9999, keep=1, min_periods=100)
    assert not none.rejections


def test_finalize_selection_takes_top_n_eligible() -> None:
    sel = SelectionContext(universe=tuple("ABCD"), candidates={"A": 1.0, "B": 3.0, "C": 2.0, "D": 2.0},
                           rejections={"B": "x: no"})
    assert STAGES["finalize_selection"](selection=sel, top_n=2) == ("C", "D")
    with pytest.raises(ValueError, match="no eligible symbol left"):
        STAGES["finalize_selection"](selection=ctx("AB", {"A": "x", "B": "y"}))


def test_parallel_branches_merge_into_one_selection() -> None:
    """What the runner does at the join: every updater sees the seed, the merge combines them."""
    rng = np.random.default_rng(3)
    returns = frame({s: rng.normal(0.0005 * i, 0.01 * (1 + i), 300) for i, s in enumerate("ABCDEF")})
    volume = frame({s: np.full(300, 1000.0 * (i + 1)) for i, s in enumerate("ABCDEF")})
    seed = STAGES["seed_selection"](returns=returns, min_history=200)
    momentum = STAGES["momentum_feature"](returns=returns)
    branches = [
        STAGES["momentum_rank"](selection=seed, momentum=momentum),
        STAGES["volatility_filter"](selection=seed, volatility=STAGES["volatility_feature"](returns=returns)),
        STAGES["liquidity_filter"](selection=seed, liquidity=STAGES["liquidity_feature"](volume=volume)),
    ]
    merged = merge_selection(seed, branches)
    assert set(merged.rejections) == {"F", "A"}  # most volatile; least liquid (below the 0.2 quantile)
    assert merged.candidates == branches[0].candidates  # only momentum_rank scored
    assert merged.ranked() == tuple(momentum.drop(["A", "F"]).sort_values(ascending=False).index)
    assert [e.stage for e in merged.audit] == ["seed_selection", "momentum_rank", "volatility_filter",
                                               "liquidity_filter"]
    portfolio = STAGES["finalize_selection"](selection=merged, top_n=2)
    assert portfolio == merged.ranked()[:2]


def test_pairwise_corr_matches_pandas_with_gaps() -> None:
    rng = np.random.default_rng(8)
    values = rng.normal(0.001, 0.02, (120, 12))
    values[rng.random(values.shape) < 0.15] = np.nan
    values[:100, 3] = np.nan  # too few rows paired with anyone
    values[:, 5] = np.nan     # no data at all
    values[:, 7] = 0.25       # constant: no correlation defined
    expected = pd.DataFrame(values).corr(min_periods=30).to_numpy()
    got = features.pairwise_corr(values, min_periods=30)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.allclose(got, expected, equal_nan=True, rtol=0, atol=1e-12)
