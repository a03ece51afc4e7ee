"""L0: read raw daily price files (CSV or parquet, one per symbol) exactly as the vendor wrote them.

Every field is kept as text (or null) so that nothing is lost or guessed before L1 types it; each row
keeps its provenance (file name, row number). A file that cannot be used at all — unreadable, corrupt,
empty, missing a column — is rejected whole, with the reason and its row count, and the others go on.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from stagekit_dataops import log
from stagekit_dataops.errors import RawDataError

if TYPE_CHECKING:
    import pandas as pd

REQUIRED = ("date", "symbol", "close", "volume")
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@attrs.frozen
class RawFile:
    """One raw file as read: its required columns as text (a pyarrow Table), or why it was rejected whole."""

    name: str
    rows: int  # data rows in the file (0 if none could be counted)
    table: pa.Table | None = None
    rejected: str | None = None


def discover(raw_dir: str | os.PathLike[str]) -> list[Path]:
    """The files of ``raw_dir``, sorted by name; hidden ones (e.g. unfinished temporary files) are skipped."""
    directory = Path(raw_dir)
    if not directory.is_dir():
        raise RawDataError(f"raw price directory {str(directory)!r} does not exist or is not a directory")
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def read_file(path: Path) -> RawFile:
    """Read one raw file; never raises for bad content (the result says why the file was rejected)."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        return RawFile(path.name, 0, rejected=f"not a raw price file (expected {', '.join(sorted(FORMATS))})")
    if path.stat().st_size == 0:
        return RawFile(path.name, 0, rejected="empty file (0 bytes)")
    return _read_csv(path) if kind == "csv" else _read_parquet(path)


def _read_csv(path: Path) -> RawFile:
    header: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        # every column as text: typing is L1's job, and a bad value must reach it to be reported
        options = pcsv.ConvertOptions(column_types={c: pa.string() for c in header}, strings_can_be_null=True)
        table = pcsv.read_csv(path, convert_options=options)
    except (pa.ArrowInvalid, UnicodeDecodeError, csv.Error) as exc:
        if not header:
            return RawFile(path.name, 0, rejected="empty file (no header, no rows)")
        rows = max(_count_lines(path) - 1, 0)
        return RawFile(path.name, rows, rejected=f"unreadable CSV: {_one_line(exc, path)}")
    return _shaped(path.name, table)


def _read_parquet(path: Path) -> RawFile:
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... for a corrupt file
        rows = _parquet_rows(path)
        counted = "" if rows else " (row count unknown)"
        return RawFile(path.name, rows, rejected=f"corrupt parquet file{counted}: {_one_line(exc, path)}")
    return _shaped(path.name, table)


def _shaped(name: str, table: pa.Table) -> RawFile:
    table = table.rename_columns([str(c).strip().lower() for c in table.column_names])
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        return RawFile(name, table.num_rows, rejected=_missing(missing, table.column_names))
    if table.num_rows == 0:
        return RawFile(name, 0, rejected="empty file (a header but no rows)")
    columns = {"file": pa.array([name] * table.num_rows, pa.string()),
               "row": pa.array(range(1, table.num_rows + 1), pa.int64())}
    for c in REQUIRED:
        column = table[c]
        if pa.types.is_timestamp(column.type):
            column = pc.cast(column, pa.date32())  # daily data: keep the date, as a CSV would write it
        columns[c] = pc.cast(column, pa.string())
    return RawFile(name, table.num_rows, table=pa.table(columns))


def _missing(missing: list[str], found: list[str]) -> str:
    return f"missing column(s) {', '.join(missing)} (the file has: {', '.join(map(str, found)) or 'none'})"


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _parquet_rows(path: Path) -> int:
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # the footer itself is unreadable: the count is unknown
        return 0


def _one_line(exc: BaseException, path: Path) -> str:
    text = " ".join(str(exc).replace(str(path), path.name).split())
    return f"{type(exc).__name__}: {text[:200]}"


def read_raw_prices(raw_dir: str | os.PathLike[str], on_bad_file: str = "reject") -> pd.DataFrame:
    """L0: every row of every raw file in ``raw_dir``, as text, with its file and row number.

    ``on_bad_file="reject"`` (default) leaves a bad file out and records why in the ingestion log;
    ``"error"`` raises :class:`RawDataError` naming the first bad file. If no file is usable it raises.
    """
    if on_bad_file not in ("reject", "error"):
        raise ValueError(f"on_bad_file must be 'reject' or 'error', not {on_bad_file!r}")
    paths = discover(raw_dir)
    if not paths:
        raise RawDataError(f"no raw price files in {str(raw_dir)!r}")
    results = [read_file(p) for p in paths]
    bad = [r for r in results if r.table is None]
    if bad and (on_bad_file == "error" or len(bad) == len(results)):
        lines = [f"{r.name} ({r.rows} rows): {r.rejected}" for r in bad]
        first = bad[0]
        what = "a raw file was" if on_bad_file == "error" else f"all {len(results)} raw files were"
        raise RawDataError(f"{what} rejected in {str(raw_dir)!r}:\n  " + "\n  ".join(lines),
                           file=first.name, rows=first.rows)
    good = [r.table for r in results if r.table is not None]
    frame: pd.DataFrame = pa.concat_tables(good).to_pandas()
    rows_in = {r.name: r.rows for r in results}
    rows_out = {r.name: (r.rows if r.table is not None else 0) for r in results}
    rejected = {r.name: Counter({r.rejected: r.rows}) for r in bad if r.rejected}
    return log.attach(frame, "L0", log.entries("L0", rows_in, rows_out, rejected))
