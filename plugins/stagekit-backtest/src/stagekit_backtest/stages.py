"""The backtest stages' functions. Imports pandas; ``plugin.py`` names them lazily as ``"module:attr"``.

Artifacts and params arrive as keyword arguments; the defaults here match the params ``plugin.py``
declares (a test checks it). The metric stages are updaters of ``backtest``: each returns the context with
its metrics added, the runner runs them in parallel and ``merge_backtest`` unions their metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from stagekit_backtest import engine, metrics
from stagekit_backtest import weights as weighting
from stagekit_backtest.context import BacktestContext

if TYPE_CHECKING:
    import pandas as pd


def target_weights(
    returns: pd.DataFrame, portfolio: Sequence[str], scheme: str = "equal", lookback: int = 63,
    min_periods: int = 20, start: str | None = None,
) -> pd.DataFrame:
    """Monthly target weights for the portfolio: ``scheme`` "equal" or "inverse_vol"."""
    return weighting.target_weights(
        returns, portfolio, scheme=scheme, lookback=lookback, min_periods=min_periods, start=start
    )


def run_backtest(returns: pd.DataFrame, weights: pd.DataFrame, cost_bps: float = 10.0) -> BacktestContext:
    """Backtest the weights on the returns, with turnover costs of ``cost_bps`` basis points."""
    return engine.simulate(returns, weights, cost_bps=cost_bps)


T = TypeVar("T")


def _need(value: T | None, what: str, stage: str) -> T:
    if value is None:
        raise ValueError(f"{stage}: the backtest has no {what} yet (run_backtest makes them)")
    return value


def return_metrics(
    backtest: BacktestContext, periods_per_year: int = 252, risk_free: float = 0.0
) -> BacktestContext:
    """CAGR, annualised volatility and Sharpe ratio of the net daily returns."""
    r = _need(backtest.returns, "returns", "return_metrics")
    return backtest.with_metrics({
        "cagr": metrics.cagr(r, periods_per_year),
        "volatility": metrics.annual_volatility(r, periods_per_year),
        "sharpe": metrics.sharpe(r, periods_per_year, risk_free),
    }, stage="return_metrics")


def drawdown_metrics(backtest: BacktestContext) -> BacktestContext:
    """Maximum drawdown of the equity curve (negative, or 0)."""
    equity = _need(backtest.equity, "equity curve", "drawdown_metrics")
    return backtest.with_metrics({"max_drawdown": metrics.max_drawdown(equity)}, stage="drawdown_metrics")


def turnover_metrics(backtest: BacktestContext, periods_per_year: int = 252) -> BacktestContext:
    """Annual two-sided turnover."""
    r = _need(backtest.returns, "returns", "turnover_metrics")
    turnover = _need(backtest.turnover, "turnover", "turnover_metrics")
    value = metrics.annual_turnover(turnover, len(r), periods_per_year)
    return backtest.with_metrics({"turnover": value}, stage="turnover_metrics")


def summarize_backtest(backtest: BacktestContext) -> dict[str, Any]:
    """The equity curve and the metrics, as artifacts of their own."""
    equity = _need(backtest.equity, "equity curve", "summarize_backtest")
    return {"equity_curve": equity, "metrics": dict(backtest.metrics)}
