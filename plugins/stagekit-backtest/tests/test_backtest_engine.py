"""Weights, the vectorised backtest and its costs, on frames small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from stagekit_backtest.plugin import backtest_stages

STAGES = {s.name: s for s in backtest_stages()}
NAN = float("nan")


def frame(data: dict[str, list[float]], start: str) -> pd.DataFrame:
    n = len(next(iter(data.values())))
    return pd.DataFrame(data, index=pd.bdate_range(start, periods=n), dtype="float64")


# --- weights -----------------------------------------------------------------------------------------


def weight_returns() -> pd.DataFrame:
    # 2024-01-25 .. 2024-02-02; January's first day here is the 25th, February's the 1st
    return frame({
        "A": [0.5, 0.5, 0.02, 0.00, -0.02, 9.0, 9.0],
        "B": [0.5, 0.5, 0.04, 0.00, -0.04, 9.0, 9.0],
        "C": [0.5, 0.5, NAN, 0.01, 0.03, 9.0, 9.0],
        "D": [0.5, 0.5, 0.01, 0.01, 0.01, 9.0, 9.0],
    }, "2024-01-25")


def test_equal_weights_over_symbols_with_enough_history() -> None:
    w = STAGES["target_weights"](
        returns=weight_returns(), portfolio=("A", "B", "C"), lookback=3, min_periods=3
    )
    # 2024-01-25 sees no past at all and is dropped; on 02-01 C has 2 returns in the 3 days before
    assert list(w.index) == [pd.Timestamp("2024-02-01")]
    assert list(w.columns) == ["A", "B", "C"]
    assert w.iloc[0].tolist() == [0.5, 0.5, 0.0]


def test_inverse_vol_weights_use_the_days_before_the_rebalance() -> None:
    w = STAGES["target_weights"](returns=weight_returns(), portfolio=("A", "B", "C", "D"),
                                 scheme="inverse_vol", lookback=3, min_periods=3)
    # std of (0.02, 0, -0.02) is 0.02, of (0.04, 0, -0.04) is 0.04: 1/0.02 : 1/0.04 = 2 : 1
    # D has zero volatility and C too little history: neither gets weight
    assert w.iloc[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0])


def test_weights_start_and_errors() -> None:
    returns = frame({"A": [0.01] * 60}, "2024-01-01")
    w = STAGES["target_weights"](returns=returns, portfolio=["A"], lookback=5, min_periods=5)
    assert list(w.index) == [pd.Timestamp("2024-02-01"), pd.Timestamp("2024-03-01")]
    later = STAGES["target_weights"](
        returns=returns, portfolio=["A"], lookback=5, min_periods=5, start="2024-02-15"
    )
    assert list(later.index) == [pd.Timestamp("2024-03-01")]
    with pytest.raises(ValueError, match=r"portfolio symbols \['Z'\] are not columns of 'returns'"):
        STAGES["target_weights"](returns=returns, portfolio=["A", "Z"])
    with pytest.raises(ValueError, match="unknown weighting scheme 'magic'"):
        STAGES["target_weights"](returns=returns, portfolio=["A"], scheme="magic")
    with pytest.raises(ValueError, match="no rebalance date has a portfolio symbol with 500 returns"):
        STAGES["target_weights"](returns=returns, portfolio=["A"], min_periods=500)


# --- the backtest ------------------------------------------------------------------------------------


def test_backtest_by_hand() -> None:
    returns = frame({"A": [NAN, 0.10, -0.05, 0.02, 0.01], "B": [NAN, 0.00, 0.10, -0.02, 0.03]}, "2024-01-29")
    days = returns.index  # 01-29, 01-30, 01-31, 02-01, 02-02
    weights = pd.DataFrame({"A": [0.5, 0.6], "B": [0.5, 0.2]}, index=[days[1], days[3]])
    bt = STAGES["run_backtest"](returns=returns, weights=weights, cost_bps=100.0)

    gross = [0.05, 1.0725 / 1.05 - 1, 0.008, 1.02 / 1.008 - 1]  # values 1.05, 1.0725 | 1.008, 1.02
    # drifted weights before the 2nd rebalance: A 0.5225/1.0725, B 0.55/1.0725
    turnover = [1.0, (0.6 - 0.5225 / 1.0725) + (0.55 / 1.0725 - 0.2)]
    cost = [turnover[0] / 100, 0.0, turnover[1] / 100, 0.0]
    net = [(1 - c) * (1 + g) - 1 for c, g in zip(cost, gross, strict=True)]

    assert list(bt.returns.index) == list(days[1:])
    assert bt.gross_returns.tolist() == pytest.approx(gross)
    assert bt.turnover.tolist() == pytest.approx(turnover)
    assert bt.costs.tolist() == pytest.approx(cost)
    assert bt.returns.tolist() == pytest.approx(net)
    assert bt.equity.tolist() == pytest.approx(np.cumprod(np.add(1, net)).tolist())
    assert bt.weights is weights
    assert bt.cost_bps == 100.0


def test_zero_cost_full_weight_matches_buy_and_hold() -> None:
    rng = np.random.default_rng(0)
    index = pd.bdate_range("2024-01-01", periods=80)
    returns = pd.DataFrame(rng.normal(0.0005, 0.01, (80, 1)), columns=["A"], index=index)
    weights = pd.DataFrame({"A": [1.0, 1.0, 1.0]}, index=returns.index[[0, 22, 45]])
    bt = STAGES["run_backtest"](returns=returns, weights=weights, cost_bps=0.0)
    assert bt.equity.iloc[-1] == pytest.approx(np.prod(1 + returns["A"].to_numpy()))
    assert bt.turnover.tolist() == pytest.approx([1.0, 0.0, 0.0])  # holding 100% needs no trade


def test_backtest_rejects_bad_weights() -> None:
    returns = frame({"A": [0.01] * 5}, "2024-01-01")
    off_day = pd.DataFrame({"A": [1.0]}, index=[pd.Timestamp("2024-01-06")])  # a Saturday
    with pytest.raises(ValueError, match="are not dates of 'returns'"):
        STAGES["run_backtest"](returns=returns, weights=off_day)
    with pytest.raises(ValueError, match="missing or infinite weights"):
        STAGES["run_backtest"](returns=returns, weights=pd.DataFrame({"A": [NAN]}, index=returns.index[:1]))


@pytest.mark.parametrize("scheme", ["equal", "inverse_vol"])
def test_no_look_ahead(scheme: str) -> None:
    """Changing returns from a date on changes no weight decided on or before it, nor any earlier result."""
    rng = np.random.default_rng(42)
    index = pd.bdate_range("2023-01-02", periods=260)
    returns = pd.DataFrame(rng.normal(0.0, 0.01, (260, 4)), index=index, columns=list("ABCD"))
    base_w = STAGES["target_weights"](returns=returns, portfolio=list("ABCD"), scheme=scheme)
    base = STAGES["run_backtest"](returns=returns, weights=base_w)
    for cut in (base_w.index[3], base_w.index[3] + pd.offsets.BDay(5)):
        future = returns.copy()
        future.loc[cut:] = rng.normal(0.05, 0.2, future.loc[cut:].shape)
        w = STAGES["target_weights"](returns=future, portfolio=list("ABCD"), scheme=scheme)
        bt = STAGES["run_backtest"](returns=future, weights=w)
        pd.testing.assert_frame_equal(w.loc[:cut], base_w.loc[:cut])
        if scheme == "inverse_vol":  # later weights do see the change (equal weights ignore values)
            assert not w.loc[cut:].iloc[1:].equals(base_w.loc[cut:].iloc[1:])
        before = bt.equity.index < cut
        pd.testing.assert_series_equal(bt.equity[before], base.equity[before])
        assert bt.equity[cut] != base.equity[cut]
