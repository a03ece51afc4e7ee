"""The L0-L4 data contracts of ingestion, as pandera schemas.

Importing this module imports pandera (most of a second), so the plugin never imports it at registration:
its stages name these schemas lazily (``"stagekit_dataops.schemas:Prices"``) and stagekit imports them when
a contract is first checked. The same schema object guards both ends of an edge, so a value is validated
once, not once by its producer and again by its consumer.

- L0 ``RawPrices``: raw vendor rows as read (every field text, or null), plus provenance (file, row).
- L1 ``Prices``: typed, deduplicated on (symbol, date), sorted by symbol then date.
- L2 ``AlignedPrices``: every business day of each symbol's life; ``gap`` marks days without a price.
- L3 ``Features``: per symbol and date: simple and log return, rolling volatility, dollar volume.
- L4 ``ReturnsMatrix`` / ``VolumeMatrix``: dates (unique, sorted) x symbols, float64.
- ``IngestionReport``: per file and level, rows in / out / rejected / added, and why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from stagekit_dataops.log import LEVELS

__all__ = [
    "AlignedPrices",
    "Features",
    "IngestionReport",
    "Prices",
    "RawPrices",
    "ReturnsMatrix",
    "VolumeMatrix",
]


def _increasing(first: str, second: str) -> pa.Check:
    """Rows strictly increasing by (first, second): sorted, and unique — in one vectorised pass."""

    def check(df: pd.DataFrame) -> pd.Series:
        if len(df) < 2:
            return pd.Series(True, index=df.index)
        a, b = df[first], df[second].to_numpy()
        a0, a1 = a.iloc[:-1].reset_index(drop=True), a.iloc[1:].reset_index(drop=True)
        later = (a1 > a0).to_numpy(dtype=bool, na_value=False)
        same = (a1 == a0).to_numpy(dtype=bool, na_value=False)
        return pd.Series(np.concatenate([[True], later | (same & (b[1:] > b[:-1]))]), index=df.index)

    return pa.Check(check, name=f"sorted by ({first}, {second}), no duplicates")


def _finite(s: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(s.to_numpy(dtype="float64", na_value=np.nan)) | s.isna(), index=s.index)


_SORTED = _increasing("symbol", "date")
_BUSINESS_DAY = pa.Check(lambda s: s.dt.day_of_week < 5, name="business day")
_FINITE = pa.Check(_finite, name="finite")

RawPrices = pa.DataFrameSchema(
    {
        "file": pa.Column(str),
        "row": pa.Column("int64", pa.Check.ge(1)),
        "date": pa.Column(str, nullable=True),
        "symbol": pa.Column(str, nullable=True),
        "close": pa.Column(str, nullable=True),
        "volume": pa.Column(str, nullable=True),
    },
    checks=[_increasing("file", "row")], strict=True, name="L0 raw prices",
)

Prices = pa.DataFrameSchema(
    {
        "date": pa.Column("datetime64[ns]"),
        "symbol": pa.Column(str, pa.Check.str_length(min_value=1)),
        "close": pa.Column(float, [pa.Check.gt(0), _FINITE]),
        "volume": pa.Column(float, [pa.Check.ge(0), _FINITE], nullable=True),
        "file": pa.Column(str),
    },
    checks=[_SORTED], strict=True, name="L1 prices",
)

_ALIGNED_COLUMNS = {
    "date": pa.Column("datetime64[ns]", _BUSINESS_DAY),
    "symbol": pa.Column(str, pa.Check.str_length(min_value=1)),
    "close": pa.Column(float, [pa.Check.gt(0), _FINITE], nullable=True),
    "volume": pa.Column(float, [pa.Check.ge(0), _FINITE], nullable=True),
    "gap": pa.Column(bool),
    "file": pa.Column(str),
}
_GAPS_MARKED = pa.Check(lambda df: df["gap"] == df["close"].isna(),
                        name="gap marks exactly the rows without a close")

AlignedPrices = pa.DataFrameSchema(
    _ALIGNED_COLUMNS, checks=[_SORTED, _GAPS_MARKED], strict=True,
    name="L2 aligned prices",
)

Features = pa.DataFrameSchema(
    {
        **_ALIGNED_COLUMNS,
        "ret": pa.Column(float, [pa.Check.ge(-1), _FINITE], nullable=True),
        "log_ret": pa.Column(float, _FINITE, nullable=True),
        "volatility": pa.Column(float, [pa.Check.ge(0), _FINITE], nullable=True),
        "dollar_volume": pa.Column(float, [pa.Check.ge(0), _FINITE], nullable=True),
    },
    checks=[_SORTED, _GAPS_MARKED], strict=True, name="L3 features",
)


def _symbol_columns(df: pd.DataFrame) -> bool:
    return df.shape[1] > 0 and bool(df.columns.is_unique and df.columns.is_monotonic_increasing)


def _matrix(name: str, values: pa.Check) -> pa.DataFrameSchema:
    # Frame-wide checks rather than one regex column: hundreds of symbol columns validate in one pass.
    return pa.DataFrameSchema(
        index=pa.Index("datetime64[ns]", unique=True, name="date"),
        checks=[
            pa.Check(lambda df: bool((df.dtypes == "float64").all()), name="every column float64"),
            values,
            pa.Check(lambda df: bool(df.index.is_monotonic_increasing), name="dates sorted"),
            pa.Check(_symbol_columns, name="symbol columns: at least one, unique, sorted"),
        ],
        name=name,
    )


ReturnsMatrix = _matrix(
    "L4 returns",
    pa.Check(lambda df: ((df >= -1) & np.isfinite(df)) | df.isna(),
             name="finite simple return >= -1, or missing"),
)
VolumeMatrix = _matrix(
    "L4 volume",
    pa.Check(lambda df: ((df >= 0) & np.isfinite(df)) | df.isna(), name="finite volume >= 0, or missing"),
)

_COUNT = pa.Column("int64", pa.Check.ge(0))
IngestionReport = pa.DataFrameSchema(
    {
        "file": pa.Column(str),
        "level": pa.Column(str, pa.Check.isin(LEVELS)),
        "rows_in": _COUNT,
        "rows_out": _COUNT,
        "rows_rejected": _COUNT,
        "rows_added": _COUNT,
        "why": pa.Column(str),
    },
    unique=["file", "level"],
    checks=[pa.Check(lambda df: df["rows_out"] == df["rows_in"] - df["rows_rejected"] + df["rows_added"],
                     name="rows out = in - rejected + added")],
    strict=True, name="ingestion report",
)
