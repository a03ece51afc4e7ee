"""The ``backtest`` plugin: registers the backtest stages and the ``BacktestContext`` merge.

Registration imports nothing heavy: stage functions are named lazily (``"stagekit_backtest.stages:..."``,
which imports pandas only when a stage first runs), and the context and merge modules are pandas-free.

The DAG these declarations build::

    returns + portfolio -> target_weights -> weights
    returns + weights   -> run_backtest   -> backtest
    backtest -> return_metrics, drawdown_metrics, turnover_metrics   (updaters, in parallel, merged)
    backtest (merged) -> summarize_backtest -> equity_curve, metrics
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stagekit import Stage, hookimpl, stage
from stagekit_backtest.context import BacktestContext
from stagekit_backtest.merge import merge_backtest

_MODULE = "stagekit_backtest.stages"
_TYPES = {"backtest": BacktestContext}


def _stage(name: str, *, requires: list[str], provides: list[str], params: dict[str, Any],
           description: str, tags: tuple[str, ...] = ()) -> Stage:
    typed = {k: v for k, v in _TYPES.items() if k in requires or k in provides}
    return stage(
        f"{_MODULE}:{name}", requires=requires, provides=provides, params=params, types=typed,
        tags=("backtest", *tags), description=description,
    )


def backtest_stages() -> list[Stage]:
    """Every stage this plugin registers (also handy to build a pipeline in code)."""
    return [
        _stage("target_weights", requires=["returns", "portfolio"], provides=["weights"],
               params={"scheme": "equal", "lookback": 63, "min_periods": 20, "start": None},
               description="Monthly target weights: equal or inverse volatility, from data up to t-1"),
        _stage("run_backtest", requires=["returns", "weights"], provides=["backtest"],
               params={"cost_bps": 10.0},
               description="Vectorised backtest with turnover-based transaction costs"),
        _stage("return_metrics", requires=["backtest"], provides=["backtest"], tags=("metrics",),
               params={"periods_per_year": 252, "risk_free": 0.0},
               description="CAGR, annualised volatility and Sharpe ratio"),
        _stage("drawdown_metrics", requires=["backtest"], provides=["backtest"], tags=("metrics",),
               params={}, description="Maximum drawdown"),
        _stage("turnover_metrics", requires=["backtest"], provides=["backtest"], tags=("metrics",),
               params={"periods_per_year": 252}, description="Annual two-sided turnover"),
        _stage("summarize_backtest", requires=["backtest"], provides=["equity_curve", "metrics"],
               params={}, description="The equity curve and the metrics as artifacts"),
    ]


@hookimpl
def stagekit_register_stages(register: Callable[[Stage], None]) -> None:
    for s in backtest_stages():
        register(s)


@hookimpl
def stagekit_register_merges(register: Callable[[type, Callable[[Any, list[Any]], Any]], None]) -> None:
    register(BacktestContext, merge_backtest)
