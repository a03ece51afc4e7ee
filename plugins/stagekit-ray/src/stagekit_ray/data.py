"""The returns matrix from a parquet dataset of long rows, with Ray Data streaming.

Rows are ``(date, symbol, close)``, one per symbol and date, in any order and any number of files; a null
close is a day without a price. The matrix is the one the dataops plugin builds: simple returns against the
previous *observed* close of the same symbol, unique sorted dates (a ``DatetimeIndex`` named "date") by
sorted symbol columns (named "symbol"), float64, NaN where there is no price or no previous one.

Streaming keeps memory bounded by the matrix itself, never by the long rows, which are several times
larger in memory (a symbol string, a date and a close per cell): a first pass reads only the date and
symbol columns and collects the unique values; a second pass encodes each batch in the workers as
(row, column, close) positions, and the caller scatters the batches into a preallocated matrix as they
arrive, in whatever order. Returns are then computed in place, a block of columns at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from stagekit import ExecutorError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

__all__ = ["DuplicateRowError", "read_returns_matrix", "returns_long", "returns_matrix_pandas"]


class DuplicateRowError(ExecutorError, ValueError):
    """The same symbol and date appear in more than one row."""


def read_returns_matrix(
    paths: str | Sequence[str],
    *,
    date: str = "date",
    symbol: str = "symbol",
    close: str = "close",
    output: str = "frame",
    chunk_columns: int = 256,
    **read_options: Any,
) -> Any:
    """Build the returns matrix from parquet files (a path, a directory, or a list of them).

    ``output="frame"`` (the default) returns the pandas matrix. ``output="dataset"`` returns instead a lazy
    Ray Dataset of long rows ``(date, symbol, ret)``, one per input row, computed per symbol when consumed
    (for data whose matrix does not fit in one process; it needs a Ray session that outlives the call).
    ``read_options`` go to ``ray.data.read_parquet``. Without a Ray session, one is started for the call.
    """
    if output not in ("frame", "dataset"):
        raise ValueError(f"output must be 'frame' or 'dataset', not {output!r}")
    names = (date, symbol, close)
    if output == "dataset":
        return _long_returns(paths, names, read_options)
    with _ray_session():
        return _matrix(paths, names, chunk_columns, read_options)


def returns_matrix_pandas(rows: pd.DataFrame, *, date: str = "date", symbol: str = "symbol",
                          close: str = "close") -> pd.DataFrame:
    """The same matrix with pandas alone, from long rows already in memory (the reference)."""
    long = returns_long(rows, date, symbol, close)
    matrix = long.pivot(index="date", columns="symbol", values="ret").sort_index().sort_index(axis=1)
    return _shape(matrix.to_numpy(dtype="float64"), matrix.index, [str(c) for c in matrix.columns])


def returns_long(rows: pd.DataFrame, date: str = "date", symbol: str = "symbol",
                 close: str = "close") -> pd.DataFrame:
    """Long rows ``(date, symbol, ret)``, one per input row, sorted by symbol and date."""
    import pandas as pd

    df = pd.DataFrame({"date": pd.to_datetime(rows[date]).astype("datetime64[ns]"),
                       "symbol": rows[symbol].astype(str), "close": rows[close].astype("float64")})
    twice = df.duplicated(["date", "symbol"])
    if twice.any():
        first = df[twice].iloc[0]
        raise DuplicateRowError(f"symbol {first['symbol']!r} has more than one row for {first['date']}")
    df = df.sort_values(["symbol", "date"], kind="stable", ignore_index=True)
    previous = df.groupby("symbol", sort=False)["close"].ffill().groupby(df["symbol"], sort=False).shift(1)
    return pd.DataFrame({"date": df["date"], "symbol": df["symbol"], "ret": df["close"] / previous - 1.0})


# --- the streaming matrix ---------------------------------------------------------------------------


# An empty cell holds this NaN (a quiet NaN with a payload); a row's close, even a missing one, is written as
# the ordinary NaN or a number, so a cell written twice (a duplicated row) is found without a second matrix.
_EMPTY = 0x7FF8_0000_5EED_0001


def _matrix(paths: str | Sequence[str], names: tuple[str, str, str], chunk: int,
            read_options: dict[str, Any]) -> pd.DataFrame:
    import numpy as np
    import pyarrow as pa

    date, symbol, _ = names
    keys = _streamed(_read_parquet(paths, read_options).select_columns([date, symbol]))
    uniques = keys.map_batches(_uniques, fn_kwargs={"date": date, "symbol": symbol}, batch_format="pyarrow",
                               batch_size=None, zero_copy_batch=True)
    dates, symbols = _collect_uniques(uniques.iter_batches(batch_format="pyarrow", batch_size=None))
    cells = np.full((len(dates), len(symbols)), _EMPTY, dtype=np.uint64).view(np.float64)
    bits = cells.view(np.uint64)
    rows = _streamed(_read_parquet(paths, read_options).select_columns(list(names)))
    encoded = rows.map_batches(
        _encode, fn_kwargs={"names": names, "dates": pa.array(dates), "symbols": pa.array(symbols)},
        batch_format="pyarrow", batch_size=None, zero_copy_batch=True)
    for batch in encoded.iter_batches(batch_format="numpy", batch_size=None):
        flat = batch["cell"]
        taken = bits.flat[flat] != _EMPTY
        if taken.any():
            at = int(flat[taken][0])
            raise DuplicateRowError(f"symbol {symbols[at % len(symbols)]!r} has more than one row for "
                                    f"{dates[at // len(symbols)]}")
        cells.flat[flat] = batch["close"]
    _returns_in_place(cells, chunk)  # empty cells become the ordinary NaN there
    return _shape(cells, dates, symbols)


def _read_parquet(paths: str | Sequence[str], read_options: dict[str, Any]) -> Any:
    """``ray.data.read_parquet`` through Ray's first parquet datasource.

    Ray 2.60's default (datasource V2) lists files with a thread pool that stalls about 3 s per read on
    shutdown, whatever the data's size; V1 reads the same files in a fraction of a second.
    """
    import ray.data

    context = ray.data.DataContext.get_current()
    before = getattr(context, "use_datasource_v2", None)
    if before is not None:
        context.use_datasource_v2 = False
    try:
        return ray.data.read_parquet(paths if isinstance(paths, str) else list(paths), **read_options)
    finally:
        if before is not None:
            context.use_datasource_v2 = before


def _streamed(dataset: Any, block_bytes: int = 16 * 2**20) -> Any:
    """Set the dataset's own context: small blocks, and our errors raised as themselves.

    Small blocks bound each worker's memory (a block is a whole file otherwise); our batch functions'
    errors (a duplicated row) would otherwise reach the caller as a UserCodeException without them.
    """
    dataset.context.target_max_block_size = block_bytes
    dataset.context.raise_original_map_exception = True
    return dataset


def _uniques(batch: pa.Table, date: str, symbol: str) -> pa.Table:
    """One row: the batch's unique dates and symbols (in the worker: only these travel to the caller)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dates = pc.unique(_as_timestamps(batch.column(date)))
    symbols = pc.unique(_as_strings(batch.column(symbol)))
    return pa.table({"dates": pa.array([dates.to_pylist()], pa.list_(pa.timestamp("ns"))),
                     "symbols": pa.array([symbols.to_pylist()], pa.list_(pa.string()))})


def _collect_uniques(batches: Iterator[pa.Table]) -> tuple[np.ndarray, list[str]]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    dates: list[pa.Array] = []
    symbols: list[pa.Array] = []
    for batch in batches:
        dates.extend(pc.list_flatten(c) for c in batch.column("dates").chunks)
        symbols.extend(pc.list_flatten(c) for c in batch.column("symbols").chunks)
    all_dates = pa.concat_arrays(dates) if dates else pa.array([], pa.timestamp("ns"))
    all_symbols = pa.concat_arrays(symbols) if symbols else pa.array([], pa.string())
    unique_dates = np.unique(all_dates.drop_null().to_numpy(zero_copy_only=False).astype("datetime64[ns]"))
    unique_symbols = sorted(set(pc.unique(all_symbols.drop_null()).to_pylist()))
    return unique_dates, unique_symbols


def _encode(batch: pa.Table, names: tuple[str, str, str], dates: pa.Array, symbols: pa.Array) -> pa.Table:
    """In the worker: each row as its flat cell number in the matrix, and its close as float64."""
    import pyarrow as pa
    import pyarrow.compute as pc

    date, symbol, close = names
    row = pc.index_in(_as_timestamps(batch.column(date)), value_set=dates)
    col = pc.index_in(_as_strings(batch.column(symbol)), value_set=symbols)
    if row.null_count or col.null_count:
        raise ValueError("the parquet dataset changed while it was read (a date or symbol appeared between "
                         "the two passes), or a row has no date or symbol")
    cell = pc.add(pc.multiply(pc.cast(row, pa.int64()), len(symbols)), pc.cast(col, pa.int64()))
    if pc.count_distinct(cell).as_py() != len(cell):
        import numpy as np

        _, first, counts = np.unique(cell.to_numpy(), return_index=True, return_counts=True)
        at = int(first[counts > 1][0])
        raise DuplicateRowError(f"symbol {batch.column(symbol)[at].as_py()!r} has more than one row for "
                                f"{batch.column(date)[at].as_py()}")
    closes = pc.cast(batch.column(close), pa.float64())
    closes = pc.if_else(pc.or_kleene(pc.is_null(closes), pc.is_nan(closes)), float("nan"), closes)  # one NaN
    return pa.table({"cell": cell, "close": closes})


def _returns_in_place(cells: np.ndarray, chunk: int) -> None:
    """close -> close / previous observed close - 1, per column, a block of columns at a time."""
    import numpy as np
    import pandas as pd

    for start in range(0, cells.shape[1], max(1, chunk)):
        block = cells[:, start:start + chunk]
        block[np.isnan(block)] = np.nan  # empty cells and missing closes alike
        previous = pd.DataFrame(block, copy=False).ffill().shift(1).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(block, previous, out=block)
        block -= 1.0


def _shape(values: np.ndarray, dates: Any, symbols: list[str]) -> pd.DataFrame:
    import pandas as pd

    index = pd.DatetimeIndex(pd.to_datetime(dates).astype("datetime64[ns]"), name="date")
    return pd.DataFrame(values, index=index, columns=pd.Index(symbols, name="symbol"), copy=False)


def _as_timestamps(column: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        raise ValueError(f"dates must be naive (no time zone), not {column.type}")
    return pc.cast(column, pa.timestamp("ns"))


def _as_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(column, pa.string())


# --- long rows, per symbol ---------------------------------------------------------------------------


def _long_returns(paths: str | Sequence[str], names: tuple[str, str, str],
                  read_options: dict[str, Any]) -> Any:
    import ray
    import ray.data

    if not ray.is_initialized():
        raise ExecutorError("read_returns_matrix(output='dataset') returns a lazy Ray Dataset, which needs a "
                            "Ray session that outlives the call: run it in a stage under the 'ray' executor, "
                            "or call ray.init() first")
    rows = _streamed(_read_parquet(paths, read_options).select_columns(list(names)))
    by_symbol = rows.groupby(names[1])
    return by_symbol.map_groups(_symbol_returns, fn_kwargs={"names": names}, batch_format="pandas")


def _symbol_returns(group: pd.DataFrame, names: tuple[str, str, str]) -> pa.Table:
    """In the worker: one symbol's returns, as Arrow with NaN kept as NaN (pandas would make it null)."""
    import pyarrow as pa

    long = returns_long(group, *names)
    return pa.table({"date": pa.array(long["date"].to_numpy()), "symbol": pa.array(long["symbol"].to_list()),
                     "ret": pa.array(long["ret"].to_numpy(dtype="float64"))})


@contextlib.contextmanager
def _ray_session() -> Iterator[None]:
    """The open Ray session, or a local cluster for the duration of the call (stopped after)."""
    import ray

    if ray.is_initialized():
        yield
        return
    from stagekit_ray.cluster import open_session

    session = open_session()
    try:
        yield
    finally:
        session.close()
