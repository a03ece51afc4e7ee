"""The ``selection`` plugin: registers the selection stages and the ``SelectionContext`` merge.

Registration imports nothing heavy: stage functions are named lazily (``"stagekit_selection.stages:..."``,
which imports pandas only when a stage first runs), and the context and merge modules are pandas-free.

The DAG these declarations build::

    returns -> seed_selection ------------------------------> selection
    returns -> momentum_feature   -> momentum                    |
    returns -> volatility_feature -> volatility                  |  updaters, run in parallel,
    volume  -> liquidity_feature  -> liquidity                   |  merged by merge_selection:
        momentum_rank, volatility_filter, liquidity_filter, correlation_cluster
    selection (merged) -> finalize_selection -> portfolio
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stagekit import Stage, hookimpl, stage
from stagekit_selection.context import SelectionContext
from stagekit_selection.merge import merge_selection

_MODULE = "stagekit_selection.stages"
_TYPES = {"selection": SelectionContext}
_TAGS = ("selection",)


def _stage(name: str, *, requires: list[str], provides: list[str], params: dict[str, Any],
           description: str, feature: bool = False) -> Stage:
    typed = {k: v for k, v in _TYPES.items() if k in requires or k in provides}
    return stage(
        f"{_MODULE}:{name}", requires=requires, provides=provides, params=params, types=typed,
        tags=(*_TAGS, "feature") if feature else _TAGS, description=description,
    )


def selection_stages() -> list[Stage]:
    """Every stage this plugin registers (also handy to build a pipeline in code)."""
    return [
        _stage("seed_selection", requires=["returns"], provides=["selection"],
               params={"min_history": 252, "as_of": None},
               description="Start a selection: symbols with enough return history, scored 0"),
        _stage("momentum_feature", requires=["returns"], provides=["momentum"], feature=True,
               params={"lookback": 252, "skip": 21, "min_fraction": 0.8, "as_of": None},
               description="12-1 month momentum per symbol"),
        _stage("volatility_feature", requires=["returns"], provides=["volatility"], feature=True,
               params={"lookback": 63, "min_periods": 20, "periods_per_year": 252, "as_of": None},
               description="Annualised volatility per symbol"),
        _stage("liquidity_feature", requires=["volume"], provides=["liquidity"], feature=True,
               params={"lookback": 63, "min_periods": 20, "as_of": None},
               description="Median daily volume per symbol"),
        _stage("momentum_rank", requires=["selection", "momentum"], provides=["selection"],
               params={"weight": 1.0},
               description="Score eligible symbols by momentum percentile"),
        _stage("volatility_filter", requires=["selection", "volatility"], provides=["selection"],
               params={"quantile": 0.9, "max_volatility": None},
               description="Reject the most volatile symbols"),
        _stage("liquidity_filter", requires=["selection", "liquidity"], provides=["selection"],
               params={"quantile": 0.2, "min_liquidity": 0.0},
               description="Reject illiquid symbols"),
        _stage("correlation_cluster", requires=["selection", "returns", "momentum"], provides=["selection"],
               params={"threshold": 0.7, "keep": 2, "lookback": 252, "min_periods": 126, "as_of": None},
               description="Keep the best few symbols of each cluster of correlated returns"),
        _stage("finalize_selection", requires=["selection"], provides=["portfolio"],
               params={"top_n": 20},
               description="The portfolio: top N eligible symbols by score"),
    ]


@hookimpl
def stagekit_register_stages(register: Callable[[Stage], None]) -> None:
    for s in selection_stages():
        register(s)


@hookimpl
def stagekit_register_merges(register: Callable[[type, Callable[[Any, list[Any]], Any]], None]) -> None:
    register(SelectionContext, merge_selection)
