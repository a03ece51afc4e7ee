"""L2: align each symbol to the trading calendar, marking the days it has no price as gaps.

The calendar is every business day (Monday to Friday) from the first to the last date in L1. Each symbol
gets one row per calendar day from its own first to its own last date: a day without a price is added
with ``gap=True`` and a null close and volume (nothing is invented). A row dated on a weekend is not on
the calendar and is rejected.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from stagekit_dataops import log
from stagekit_dataops.errors import RawDataError

WEEKEND = "not a business day (weekend)"
COLUMNS = ("date", "symbol", "close", "volume", "gap", "file")


def align_calendar(prices: pd.DataFrame) -> pd.DataFrame:
    """L2 aligned prices: date, symbol, close, volume, gap, file; one row per symbol per business day."""
    on_calendar = (prices["date"].dt.day_of_week < 5).to_numpy()
    kept = prices[on_calendar]
    if kept.empty:
        raise RawDataError(f"no price falls on a business day ({len(prices)} rows, all on weekends)",
                           rows=len(prices))
    calendar = pd.bdate_range(kept["date"].min(), kept["date"].max(), name="date").as_unit("ns")
    spans = kept.groupby("symbol", sort=True)["date"].agg(["min", "max"])
    start = calendar.searchsorted(spans["min"].to_numpy())
    lengths = calendar.searchsorted(spans["max"].to_numpy()) - start + 1
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    grid = pd.DataFrame({"date": calendar[np.repeat(start, lengths) + offsets],
                         "symbol": np.repeat(spans.index.to_numpy(), lengths)})
    grid["symbol"] = grid["symbol"].astype(prices["symbol"].dtype)
    aligned = grid.merge(kept, on=["symbol", "date"], how="left", validate="one_to_one")
    aligned["gap"] = aligned["close"].isna()
    # a gap belongs to the file of the price before it
    aligned["file"] = aligned.groupby("symbol", sort=False)["file"].ffill()
    aligned = aligned.loc[:, list(COLUMNS)]

    weekend = prices.loc[~on_calendar, "file"].value_counts()
    rejected = {str(f): Counter({WEEKEND: int(n)}) for f, n in weekend.items()}
    added = log.file_counts(aligned.loc[aligned["gap"], "file"])
    rows_in, rows_out = log.file_counts(prices["file"]), log.file_counts(aligned["file"])
    entries = log.entries("L2", rows_in, rows_out, rejected, added)
    return log.attach(aligned, "L2", entries)
