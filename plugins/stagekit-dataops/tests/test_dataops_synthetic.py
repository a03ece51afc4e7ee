"""synthetic.generate: deterministic raw files, in the formats asked, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from stagekit_dataops import synthetic

from stagekit.atomic import atomic_write, atomic_write_bytes


def contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_same_arguments_same_bytes_and_seed_matters(tmp_path: Path) -> None:
    a = synthetic.generate(tmp_path / "a", symbols=4, years=0.5, seed=11)
    synthetic.generate(tmp_path / "b", symbols=4, years=0.5, seed=11)
    synthetic.generate(tmp_path / "c", symbols=4, years=0.5, seed=12)
    assert [p.name for p in a] == ["S0000.csv", "S0001.parquet", "S0002.csv", "S0003.parquet"]
    assert contents(tmp_path / "a") == contents(tmp_path / "b")
    assert contents(tmp_path / "a") != contents(tmp_path / "c")


def test_files_look_like_vendor_files(tmp_path: Path) -> None:
    synthetic.generate(tmp_path, symbols=["AAA", "BBB"], years=1, seed=7, formats=("csv",), missing_rate=0.0,
                       late_listing=0.0)
    assert (tmp_path / "AAA.csv").read_text().splitlines()[0] == "date,symbol,close,volume"
    df = pd.read_csv(tmp_path / "AAA.csv", parse_dates=["date"])
    assert len(df) == 252 and (df["symbol"] == "AAA").all()
    assert list(df["date"]) == list(pd.bdate_range(synthetic.START, periods=252))
    assert (df["close"] > 0).all() and (df["volume"] >= 0).all()
    log_returns = np.diff(np.log(df["close"]))
    assert 0.003 < log_returns.std() < 0.05  # a random walk, not a constant


def test_parquet_and_gaps_and_late_listings(tmp_path: Path) -> None:
    synthetic.generate(tmp_path, symbols=20, years=1, seed=5, formats=("parquet",), missing_rate=0.05,
                       late_listing=0.5)
    lengths = [len(pd.read_parquet(p)) for p in sorted(tmp_path.iterdir())]
    assert all(n < 252 for n in lengths)  # some days are missing in every symbol
    assert min(lengths) < 200  # and some symbols listed late
    df = pd.read_parquet(tmp_path / "S0000.parquet")
    assert list(df.columns) == ["date", "symbol", "close", "volume"]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="formats must be among"):
        synthetic.generate(tmp_path, symbols=1, formats=("json",))
    with pytest.raises(ValueError, match="at least one symbol"):
        synthetic.generate(tmp_path, symbols=0)


def test_a_write_failing_midway_leaves_only_complete_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def disk_fills_up(path: Path, data: bytes, **options: Any) -> Path:
        calls.append(path.name)
        if len(calls) < 3:
            return atomic_write_bytes(path, data, **options)
        with atomic_write(path, "wb", fsync=False) as f:  # the third file: half written, then the disk fills
            f.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(synthetic, "atomic_write_bytes", disk_fills_up)
    with pytest.raises(OSError, match="No space left"):
        synthetic.generate(tmp_path, symbols=5, years=0.2)
    # no S0002, and no temporary file either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S0000.csv", "S0001.parquet"]
    assert len(pd.read_csv(tmp_path / "S0000.csv")) > 0
    assert len(pd.read_parquet(tmp_path / "S0001.parquet")) > 0
