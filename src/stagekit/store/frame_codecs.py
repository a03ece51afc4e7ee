"""The built-in codecs of tables: pandas ``DataFrame`` and ``Series`` and pyarrow ``Table``, as parquet.

DataFrames and Series are fingerprinted vectorized, by ``pandas.util.hash_pandas_object`` (index included)
plus the schema (column names and order, dtypes, categories, time zones, index names); a Table by its Arrow
IPC stream, hashed as it is written. pandas and pyarrow are imported on first use.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stagekit._typedispatch import type_name
from stagekit.errors import UnstorableError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["ArrowTableCodec", "FrameCodec", "SeriesCodec", "exactly", "sha256_of"]

_SCHEME = "1"  # bump when a fingerprint's recipe changes: earlier fingerprints then no longer match


def sha256_of(*parts: str) -> Any:
    h = hashlib.sha256()
    for part in (_SCHEME, *parts):
        h.update(part.encode())
        h.update(b"\0")
    return h


# --- pandas ------------------------------------------------------------------------------------------


class FrameCodec:
    """A pandas DataFrame as parquet (pyarrow, snappy), index and dtypes kept by pyarrow's pandas metadata."""

    name = "stagekit.parquet-frame"
    suffix = ".parquet"

    def supports(self, cls: type) -> bool:
        return exactly(cls, "pandas.DataFrame")  # a subclass (a GeoDataFrame) would come back a DataFrame

    def write(self, value: pd.DataFrame, path: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        _frame_schema(value)  # refuses what parquet cannot store
        # a frame without columns keeps its rows only if its index is a column
        table = _to_arrow(lambda: pa.Table.from_pandas(value, preserve_index=True if value.shape[1] == 0 else None))
        pq.write_table(table, path)

    def read(self, path: str) -> pd.DataFrame:
        import pyarrow.parquet as pq

        frame: pd.DataFrame = pq.read_table(path).to_pandas()
        return frame

    def fingerprint(self, value: pd.DataFrame) -> str:
        h = sha256_of("frame", _frame_schema(value), _index_schema(value.index))
        _hash_rows(h, value)
        return str(h.hexdigest())


class SeriesCodec:
    """A pandas Series as a one-column parquet file; its name is kept in the file's metadata."""

    name = "stagekit.parquet-series"
    suffix = ".parquet"
    _KEY = b"stagekit.series"

    def supports(self, cls: type) -> bool:
        return exactly(cls, "pandas.Series")

    def write(self, value: pd.Series, path: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = _series_name(value)
        levels = set(value.index.names)
        column = name if isinstance(name, str) and name not in levels else "__series__"
        table = _to_arrow(lambda: pa.Table.from_pandas(value.to_frame(column)))
        meta = {**(table.schema.metadata or {}), self._KEY: json.dumps({"name": name}).encode()}
        pq.write_table(table.replace_schema_metadata(meta), path)

    def read(self, path: str) -> pd.Series:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {})[self._KEY])
        series: pd.Series = table.to_pandas().iloc[:, 0]
        series.name = meta["name"]
        return series

    def fingerprint(self, value: pd.Series) -> str:
        name = _series_name(value)
        kinds = _check_objects(value, repr(name))
        h = sha256_of("series", json.dumps(name), _dtype_key(value.dtype), kinds, _index_schema(value.index))
        _hash_rows(h, value)
        return str(h.hexdigest())


def exactly(cls: type, name: str) -> bool:
    return type_name(cls) == name


def _to_arrow(convert: Callable[[], pa.Table]) -> pa.Table:
    import pyarrow as pa

    try:
        return convert()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise UnstorableError(f"parquet cannot store it: {exc}") from exc


def _frame_schema(frame: pd.DataFrame) -> str:
    """The frame's columns as text (names, dtypes, and the kinds of values in object columns: hash_pandas_object
    hashes non-strings by their str()); refuses what parquet cannot store or would not give back."""
    import pandas as pd

    columns = frame.columns
    if not columns.is_unique:
        dupes = sorted({repr(c) for c in columns[columns.duplicated()]})
        raise UnstorableError(f"the DataFrame has duplicate column names ({', '.join(dupes)}), which parquet "
                              "cannot store", value_type=type(frame))
    if not isinstance(columns, pd.MultiIndex) and columns.inferred_type.startswith("mixed"):
        raise UnstorableError("the DataFrame's column names are of mixed types; parquet would turn them into "
                              "strings", value_type=type(frame))
    described = [[repr(name), _dtype_key(dtype), _check_objects(frame.iloc[:, i], repr(name))]
                 for i, (name, dtype) in enumerate(frame.dtypes.items())]
    header = [columns.nlevels, repr(columns.names), _dtype_key(columns.dtype)]  # a RangeIndex comes back an Index
    return json.dumps([header, described])


def _check_objects(column: pd.Series, label: str) -> str:
    """The kind of values an object column holds (``infer_dtype``), "" for other dtypes. Refuses one that
    mixes strings with other values: its rows would hash as their str() (``1`` as ``"1"``), and parquet
    cannot store it anyway."""
    if column.dtype != object:
        return ""
    from pandas.api.types import infer_dtype

    inferred = str(infer_dtype(column, skipna=True))
    if inferred.startswith("mixed") and any(isinstance(v, str) for v in column):
        raise UnstorableError(f"column {label} mixes strings with other values ({inferred}), which parquet "
                              "cannot store; convert it to one type")
    return inferred


def _series_name(series: pd.Series) -> Any:
    name = series.name
    if name is not None and type(name) not in (str, int, float, bool):
        raise UnstorableError(f"a Series named {name!r} ({type(name).__name__}) cannot be stored: its name must "
                              "be a str, int, float, bool or None", value_type=type(series))
    return name


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _dtype_key(dtype: Any) -> str:
    """A dtype as text, in full: a categorical's categories are hashed (their repr is cut short)."""
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        from pandas.util import hash_pandas_object

        cats = hash_pandas_object(dtype.categories, index=False).to_numpy()
        digest = hashlib.sha256(cats.data).hexdigest()
        return f"category(ordered={dtype.ordered}, {_dtype_key(dtype.categories.dtype)}, {len(cats)}, {digest})"
    return _ADDRESS.sub("", repr(dtype))


def _index_schema(index: pd.Index) -> str:
    import pandas as pd

    levels = index.levels if isinstance(index, pd.MultiIndex) else [index]
    dtypes = [_dtype_key(level.dtype) for level in levels]
    return json.dumps([index.nlevels, repr(index.names), dtypes, len(index)])  # RangeIndex or Index: one


def _hash_rows(h: Any, value: pd.DataFrame | pd.Series) -> None:
    from pandas.util import hash_pandas_object

    if len(value):
        h.update(hash_pandas_object(value, index=True).to_numpy().data)


# --- pyarrow -----------------------------------------------------------------------------------------


class ArrowTableCodec:
    """A pyarrow Table as parquet, schema and metadata kept."""

    name = "stagekit.parquet-table"
    suffix = ".parquet"

    def write(self, value: pa.Table, path: str) -> None:
        import pyarrow.parquet as pq

        pq.write_table(value, path)

    def read(self, path: str) -> pa.Table:
        import pyarrow.parquet as pq

        return pq.read_table(path)

    def fingerprint(self, value: pa.Table) -> str:
        import pyarrow as pa

        sink = _HashingSink(sha256_of("arrow-table"))
        with pa.ipc.new_stream(sink, value.schema) as writer:  # chunks combined: equal content, equal stream
            writer.write_table(value.combine_chunks())
        return str(sink.hash.hexdigest())


class _HashingSink:
    """A write-only file that hashes what is written to it."""

    closed = False

    def __init__(self, h: Any) -> None:
        self.hash = h

    def write(self, data: Any) -> int:
        self.hash.update(data)
        return len(memoryview(data))

    def flush(self) -> None:
        pass
