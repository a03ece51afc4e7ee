"""The built-in catalog formats, registered through ``stagekit_register_formats`` like any plugin's.

- csv (.csv, .csv.gz, .csv.bz2, .csv.xz, .csv.zip): ``pandas.read_csv``, ``DataFrame.to_csv``
- parquet (.parquet, .pq): ``pandas.read_parquet``; ``DataFrame.to_parquet``, or a pyarrow Table
- json (.json): JSON values (``json``); a DataFrame as pandas' self-describing "table" JSON
- excel (.xlsx, .xlsm; needs openpyxl): ``pandas.read_excel``; a DataFrame, or {sheet name: DataFrame}

``load_args`` and ``save_args`` go to the reader and the writer as keyword arguments (csv and excel writes
default to ``index=False``, as Kedro's do). Local writes are atomic (:func:`stagekit.store.catalog.atomic_path`);
URLs go to pandas and pyarrow, which reach them through fsspec. Nothing heavy is imported until a dataset is
read or written.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
from typing import Any

from stagekit.hookspecs import hookimpl
from stagekit.store.catalog import atomic_path, is_url


def _pandas() -> Any:
    import pandas

    return pandas


def _frame(value: Any, fmt: str, also: str = "") -> None:
    pd = _pandas()
    if not isinstance(value, pd.DataFrame | pd.Series):
        raise TypeError(f"format {fmt!r} writes a pandas DataFrame{also}, not {type(value).__name__}")


class CsvFormat:
    suffixes = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zip")

    def read(self, path: str, **load_args: Any) -> Any:
        return _pandas().read_csv(path, **load_args)

    def write(self, value: Any, path: str, **save_args: Any) -> None:
        _frame(value, "csv")
        with atomic_path(path) as tmp:
            value.to_csv(tmp, **{"index": False, **save_args})


class ParquetFormat:
    suffixes = (".parquet", ".pq")

    def read(self, path: str, **load_args: Any) -> Any:
        return _pandas().read_parquet(path, **load_args)

    def write(self, value: Any, path: str, **save_args: Any) -> None:
        if type(value).__module__.startswith("pyarrow") and type(value).__name__ == "Table":
            import pyarrow.parquet as pq

            with atomic_path(path) as tmp:
                pq.write_table(value, tmp, **save_args)
            return
        _frame(value, "parquet", " or a pyarrow Table")
        with atomic_path(path) as tmp:
            value.to_parquet(tmp, **save_args)


class JsonFormat:
    """Plain JSON values (``load_args`` to ``json.loads``, ``save_args`` to ``json.dumps``, default
    ``indent=2``). A DataFrame is written as pandas' self-describing "table" JSON (``save_args`` to
    ``DataFrame.to_json``) and read back as a DataFrame, its dtypes and index kept."""

    suffixes = (".json",)

    def read(self, path: str, **load_args: Any) -> Any:
        text = _read_text(path)
        value = json.loads(text, **load_args)
        if isinstance(value, dict) and "pandas_version" in (value.get("schema") or {}) and "data" in value:
            return _pandas().read_json(io.StringIO(text), orient="table")
        return value

    def write(self, value: Any, path: str, **save_args: Any) -> None:
        pd = _pandas() if _is_pandas(value) else None
        if pd is not None and isinstance(value, pd.DataFrame | pd.Series):
            text = value.to_json(**{"orient": "table", "indent": 2, **save_args})
        else:
            text = json.dumps(value, **{"indent": 2, **save_args})  # a value JSON cannot hold raises here
        if is_url(path):
            with _fsspec().open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            return
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(text + "\n")


class ExcelFormat:
    """Needs openpyxl (``pip install openpyxl``). ``load_args = {sheet_name = ...}`` picks a sheet (None:
    every sheet, as {name: DataFrame}); a {sheet name: DataFrame} value writes several sheets."""

    suffixes = (".xlsx", ".xlsm")

    def read(self, path: str, **load_args: Any) -> Any:
        _needs_openpyxl()
        return _pandas().read_excel(path, **load_args)

    def write(self, value: Any, path: str, **save_args: Any) -> None:
        _needs_openpyxl()
        pd = _pandas()
        sheets = value if isinstance(value, dict) else {save_args.pop("sheet_name", "Sheet1"): value}
        for frame in sheets.values():
            _frame(frame, "excel", " or a {sheet name: DataFrame} mapping")
        with atomic_path(path) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            for sheet, frame in sheets.items():
                frame.to_excel(writer, sheet_name=sheet, **{"index": False, **save_args})


def _needs_openpyxl() -> None:
    if importlib.util.find_spec("openpyxl") is None:
        raise ImportError("format 'excel' needs openpyxl, which is not installed: pip install openpyxl")


def _fsspec() -> Any:
    """fsspec, which pandas reaches URLs through (imported by name: it ships no type information)."""
    return importlib.import_module("fsspec")


def _is_pandas(value: Any) -> bool:
    return type(value).__module__.startswith("pandas")


def _read_text(path: str) -> str:
    if is_url(path):
        with _fsspec().open(path, "r", encoding="utf-8") as f:
            text: str = f.read()
            return text
    with open(path, encoding="utf-8") as f:
        return f.read()


FORMATS = {"csv": CsvFormat(), "parquet": ParquetFormat(), "json": JsonFormat(), "excel": ExcelFormat()}


@hookimpl
def stagekit_register_formats(register: Any) -> None:
    for name, file_format in FORMATS.items():
        register(name, file_format)
