"""stagekit-backtest: backtest a portfolio with monthly weights, transaction costs and merged metrics.

Importing this package imports no pandas; the stage functions live in ``stagekit_backtest.stages``.
"""

from __future__ import annotations

from stagekit import FrozenMap
from stagekit_backtest.context import BacktestContext
from stagekit_backtest.merge import merge_backtest

__all__ = ["BacktestContext", "FrozenMap", "merge_backtest"]
