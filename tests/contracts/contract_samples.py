"""What the contract tests share: two schemas, a stage that declares them, a plugin manager holding the
built-in validator (and extra plugins), a validator that counts its calls, good and bad prices."""

from __future__ import annotations

import threading
import time
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pluggy

from stagekit import hookspecs
from stagekit.contracts import pandera_validator as contracts
from stagekit.stage import stage

Prices = pa.DataFrameSchema({"symbol": pa.Column(str), "close": pa.Column(float, pa.Check.gt(0))})
Returns = pa.DataFrameSchema({"symbol": pa.Column(str), "ret": pa.Column(float, nullable=True)})


@stage(requires=["prices"], provides=["returns"], inputs={"prices": Prices}, outputs={"returns": Returns})
def compute_returns(prices: pd.DataFrame) -> pd.DataFrame:
    return prices.assign(ret=prices.groupby("symbol")["close"].pct_change())[["symbol", "ret"]]


def manager(*extra: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(contracts, name="stagekit.contracts")
    for i, plugin in enumerate(extra):
        pm.register(plugin, name=f"extra{i}")
    return pm


class CountingValidate:
    """The real hook, counting calls (and optionally slowing them down to widen races)."""

    def __init__(self, pm: pluggy.PluginManager | None = None, delay: float = 0.0) -> None:
        self.hook = (pm or manager()).hook.stagekit_validate_artifact
        self.calls = 0
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.hook(**kwargs)


def good_prices() -> pd.DataFrame:
    return pd.DataFrame({"symbol": ["A", "A", "B"], "close": [10.0, 11.0, 5.0]})


def bad_prices() -> pd.DataFrame:
    return pd.DataFrame({"symbol": ["A", "A", None, "B"], "close": [10.0, -1.0, 5.0, 0.0]})
