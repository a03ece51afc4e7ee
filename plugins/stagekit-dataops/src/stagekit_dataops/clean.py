"""L1: type the raw rows, reject the ones that cannot be used (saying why), deduplicate, sort.

A row is rejected for the first of: no date, an unparseable (or absurd) date, no symbol, no close, a close
that is not a number, not finite or not positive, a volume that is not a number, not finite or negative.
A missing volume is kept as NaN. Of several rows for one (symbol, date) — a vendor's correction, or the
same symbol in two files — the last one read wins (files in name order, rows in file order); the others
are rejected.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from stagekit_dataops import log
from stagekit_dataops.errors import RawDataError

DUPLICATE = "duplicate (symbol, date): a later row replaces it"
_EARLIEST, _LATEST = pd.Timestamp("1900-01-01"), pd.Timestamp("2200-12-31")


def to_float(text: pd.Series) -> pd.Series:
    """Numbers from text; NaN where the text is missing or not a number."""
    try:  # the common case, every value a number: one strict vectorised cast in Arrow
        numbers = pc.cast(pa.array(text), pa.float64())
        return pd.Series(numbers.to_numpy(zero_copy_only=False), index=text.index, dtype="float64")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pd.to_numeric(text, errors="coerce").astype("float64")


def to_date(text: pd.Series) -> pd.Series:
    """Dates from ISO 8601 text (``YYYY-MM-DD``, or a date and time: its calendar date, whatever the offset).

    NaT where missing, unparseable, impossible (2020-02-30) or outside 1900-2200.
    """
    strings = pa.array(text, type=pa.string())
    head, rest = pc.utf8_slice_codeunits(strings, 0, 10), pc.utf8_slice_codeunits(strings, 10, 11)
    plain_or_timed = pc.or_(pc.equal(pc.utf8_length(strings), 10), pc.is_in(rest, pa.array(["T", " "])))
    candidate = pc.if_else(plain_or_timed, head, None)
    try:  # the common case, every date valid: one strict vectorised cast in Arrow
        days = pc.cast(candidate, pa.date32()).to_numpy(zero_copy_only=False)
        dates = pd.Series(np.asarray(days, dtype="datetime64[s]"), index=text.index)
    except pa.ArrowInvalid:  # some are not: pandas' strict parser, NaT for those
        dates = pd.to_datetime(candidate.to_pandas().set_axis(text.index), format="%Y-%m-%d", errors="coerce")
    in_range = ((dates >= _EARLIEST) & (dates <= _LATEST)).to_numpy(dtype=bool)
    return dates.where(in_range).astype("datetime64[ns]")


class _Reasons:
    """The first reason each row is rejected for (later reasons do not overwrite earlier ones)."""

    def __init__(self, n: int) -> None:
        self.codes = np.zeros(n, dtype=np.int16)  # 0: kept
        self.names: list[str] = []

    def reject(self, mask: pd.Series | np.ndarray, why: str) -> None:
        hit = np.asarray(mask, dtype=bool) & (self.codes == 0)
        if hit.any():
            self.names.append(why)
            self.codes[hit] = len(self.names)

    def of(self, code: int) -> str:
        return self.names[code - 1]


def clean_prices(raw_prices: pd.DataFrame) -> pd.DataFrame:
    """L1 prices: date, symbol, close, volume, file — typed, unique per (symbol, date), sorted."""
    raw = raw_prices
    date = to_date(raw["date"])
    symbol = raw["symbol"].str.strip()
    close, volume = to_float(raw["close"]), to_float(raw["volume"])
    reasons = _Reasons(len(raw))
    reasons.reject(raw["date"].isna(), "missing date")
    reasons.reject(date.isna(), f"unparseable date, or not between {_EARLIEST:%Y} and {_LATEST:%Y}")
    reasons.reject(symbol.isna() | (symbol == ""), "missing symbol")
    reasons.reject(raw["close"].isna(), "missing close")
    reasons.reject(close.isna(), "close is not a number")
    reasons.reject(~np.isfinite(close), "close is not finite")
    reasons.reject(close <= 0, "close is not positive")
    reasons.reject(raw["volume"].notna() & volume.isna(), "volume is not a number")
    reasons.reject(np.isinf(volume), "volume is not finite")
    reasons.reject(volume < 0, "volume is negative")

    valid = reasons.codes == 0
    typed = pd.DataFrame({"date": date[valid], "symbol": symbol[valid],
                          "close": close[valid], "volume": volume[valid], "file": raw["file"][valid]})
    duplicate = np.zeros(len(raw), dtype=bool)
    duplicate[np.flatnonzero(valid)[typed.duplicated(["symbol", "date"], keep="last").to_numpy()]] = True
    reasons.reject(duplicate, DUPLICATE)
    keep = reasons.codes == 0
    if not keep.any():
        raise RawDataError(f"no usable price rows: all {len(raw)} raw rows were rejected "
                           f"({_summary(reasons)})", rows=len(raw))
    prices = typed[keep[valid]].sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    rejected: dict[str, Counter[str]] = {}
    bad = pd.DataFrame({"file": raw["file"][~keep], "code": reasons.codes[~keep]})
    for (file, code), n in zip(*_group_keys(bad), strict=True):
        rejected.setdefault(file, Counter())[reasons.of(code)] = n
    entries = log.entries("L1", log.file_counts(raw["file"]), log.file_counts(prices["file"]), rejected)
    attached: pd.DataFrame = log.attach(prices, "L1", entries)
    return attached


def _group_keys(bad: pd.DataFrame) -> tuple[list[tuple[str, int]], list[int]]:
    """((file, reason code), rows) of the rejected rows."""
    sizes = bad.groupby(["file", "code"]).size()
    keys = [(str(f), int(c)) for f, c in sizes.index.to_list()]
    return keys, [int(n) for n in sizes.to_list()]


def _summary(reasons: _Reasons) -> str:
    codes, counts = np.unique(reasons.codes[reasons.codes > 0], return_counts=True)
    return "; ".join(f"{n} {reasons.of(int(c))}" for c, n in zip(codes, counts, strict=True))
