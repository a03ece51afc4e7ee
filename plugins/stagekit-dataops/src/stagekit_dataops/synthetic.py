"""Deterministic synthetic raw price files: a geometric random walk and a volume per symbol and business day.

``generate(directory)`` writes one raw file per symbol (``S0000.csv``, ``S0001.parquet``...), columns
``date, symbol, close, volume``, as a vendor would. The same arguments always write the same bytes. A few
symbols list late, and a few days per symbol are missing, so that alignment has gaps to mark.

Each file is written atomically (a temporary file renamed over it), and everything is flushed to disk once
at the end: an interrupted run leaves complete files and no half-written one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from stagekit import atomic_write_bytes, fsync_dir, sync_filesystem

FORMATS = ("csv", "parquet")
START = "2015-01-02"


def generate(
    directory: str | os.PathLike[str],
    symbols: int | Sequence[str] = 500,
    years: float = 10,
    seed: int = 7,
    formats: Sequence[str] = FORMATS,
    *,
    start: str = START,
    missing_rate: float = 0.002,
    late_listing: float = 0.1,
) -> list[Path]:
    """Write raw daily price files into ``directory`` (created if needed); return their paths, sorted.

    ``symbols`` is a count (named ``S0000``...) or a list of names; ``years`` of business days (252 a year)
    from ``start``; ``formats`` are used in turn, symbol by symbol. ``missing_rate`` is the share of days
    dropped at random per symbol; ``late_listing`` the share of symbols that start trading later.
    """
    names = [f"S{i:04d}" for i in range(symbols)] if isinstance(symbols, int) else [str(s) for s in symbols]
    if not names:
        raise ValueError("generate needs at least one symbol")
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be among {FORMATS}, not {list(formats)!r}")
    days = max(2, round(252 * years))
    dates = pd.bdate_range(start, periods=days)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, name in enumerate(names):
        frame = _symbol_frame(name, dates, rng, missing_rate, late_listing)
        fmt = formats[i % len(formats)]
        path = out / f"{name}.{fmt}"
        atomic_write_bytes(path, _encode(frame, fmt), fsync=False)
        paths.append(path)
    sync_filesystem(out)  # one flush for every file instead of one fsync each
    fsync_dir(out)
    return sorted(paths)


def _symbol_frame(name: str, dates: pd.DatetimeIndex, rng: np.random.Generator, missing_rate: float,
                  late_listing: float) -> pd.DataFrame:
    n = len(dates)
    drift, sigma = rng.normal(0.0003, 0.0002), rng.uniform(0.008, 0.03)
    log_price = np.log(rng.uniform(10, 300)) + np.cumsum(rng.normal(drift - sigma**2 / 2, sigma, n))
    close = np.round(np.exp(log_price), 4)
    volume = np.round(rng.lognormal(np.log(rng.uniform(1e5, 5e6)), 0.5, n)).astype("int64")
    keep = rng.random(n) >= missing_rate
    first = int(rng.integers(1, n // 2)) if rng.random() < late_listing else 0
    keep[:first] = False
    keep[first] = keep[-1] = True  # the listing day and the last day are always there
    return pd.DataFrame({"date": dates[keep], "symbol": name, "close": close[keep], "volume": volume[keep]})


def _encode(frame: pd.DataFrame, fmt: str) -> bytes:
    table = pa.table({
        "date": pa.array(frame["date"].to_numpy(dtype="datetime64[D]"), pa.date32()),
        "symbol": pa.array(frame["symbol"].to_numpy(dtype=object), pa.string()),
        "close": pa.array(frame["close"].to_numpy(), pa.float64()),
        "volume": pa.array(frame["volume"].to_numpy(), pa.int64()),
    })
    sink = pa.BufferOutputStream()
    if fmt == "csv":
        sink.write(",".join(table.column_names).encode() + b"\n")  # a plain header, as vendors write it
        pcsv.write_csv(table, sink, pcsv.WriteOptions(include_header=False, quoting_style="none"))
    else:
        pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


MARKER = ".synthetic.json"


def generate_raw_prices(workspace: str, symbols: int = 500, years: float = 10, seed: int = 7) -> str:
    """Stage: make sure ``<workspace>/data/raw`` holds the synthetic prices for these params; return its path.

    The first run generates the files; later runs with the same params find the marker and reuse them, so a
    demo pays for the data once. Different params regenerate into a clean directory.
    """
    import json
    import shutil

    from stagekit import atomic_write_text

    raw = Path(workspace) / "data" / "raw"
    wanted = {"symbols": symbols, "years": years, "seed": seed, "formats": list(FORMATS)}
    marker = raw / MARKER
    if marker.exists():
        try:
            if json.loads(marker.read_text()) == wanted:
                return str(raw)
        except ValueError:
            pass  # an unreadable marker: regenerate
        shutil.rmtree(raw)
    generate(raw, symbols=symbols, years=years, seed=seed)
    atomic_write_text(marker, json.dumps(wanted, sort_keys=True))  # written last: files complete before it
    return str(raw)
