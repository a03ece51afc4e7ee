"""The ingestion stages on clean synthetic data: every level typed, aligned, consistent, within contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dataops_helpers import checker, report_row, run_chain
from stagekit_dataops import IngestionError, stages
from stagekit_dataops.plugin import dataops_stages

from stagekit.errors import ContractError


def test_levels_on_synthetic_data(raw_dir: Path) -> None:
    art = run_chain(raw_dir)
    raw, prices, aligned = art["raw_prices"], art["prices"], art["aligned_prices"]
    files = sorted(p.name for p in raw_dir.iterdir())
    assert files == ["S0000.csv", "S0001.parquet", "S0002.csv", "S0003.parquet", "S0004.csv", "S0005.parquet"]

    # L0: text as read, with provenance
    assert list(raw.columns) == ["file", "row", "date", "symbol", "close", "volume"]
    first = pd.read_csv(raw_dir / "S0000.csv", dtype=str)
    mine = raw[raw["file"] == "S0000.csv"]
    assert mine["close"].tolist() == first["close"].tolist()
    assert mine["row"].tolist() == list(range(1, len(first) + 1))

    # L1: typed, one row per (symbol, date), sorted
    assert str(prices["date"].dtype) == "datetime64[ns]" and prices["close"].dtype == "float64"
    assert len(prices) == len(raw)
    assert prices.equals(prices.sort_values(["symbol", "date"]).reset_index(drop=True))

    # L2: every business day of each symbol's life; gaps are the days the raw files lack
    for symbol, rows in aligned.groupby("symbol"):
        days = pd.bdate_range(rows["date"].min(), rows["date"].max())
        assert rows["date"].tolist() == list(days)
        observed = set(prices.loc[prices["symbol"] == symbol, "date"])
        assert rows.loc[rows["gap"], "date"].tolist() == [d for d in days if d not in observed]
    assert aligned["gap"].sum() > 0, "the fixture's missing days should make gaps"
    assert (aligned["close"].isna() == aligned["gap"]).all()


def test_features_and_matrices(raw_dir: Path) -> None:
    art = run_chain(raw_dir)
    features, returns, volume = art["features"], art["returns"], art["volume"]
    one = features[features["symbol"] == "S0001"].reset_index(drop=True)
    observed = one[~one["gap"]]
    expected = observed["close"] / observed["close"].shift(1) - 1  # against the previous *observed* close
    assert np.allclose(observed["ret"].iloc[1:], expected.iloc[1:])
    assert one.loc[one["gap"], "ret"].isna().all()
    assert np.allclose(one["log_ret"].dropna(), np.log1p(one["ret"].dropna()))
    assert np.allclose(one["dollar_volume"].dropna(), (one["close"] * one["volume"]).dropna())
    vol = one["log_ret"].rolling(20, min_periods=15).std()
    assert np.allclose(one["volatility"], vol, equal_nan=True)

    # L4: dates x symbols, float64, unique sorted dates — what the selection and backtest plugins read
    assert isinstance(returns.index, pd.DatetimeIndex) and returns.index.is_unique
    assert returns.index.is_monotonic_increasing and returns.index.name == "date"
    assert list(returns.columns) == [f"S000{i}" for i in range(6)]
    assert (returns.dtypes == "float64").all() and (volume.dtypes == "float64").all()
    assert returns.shape == volume.shape and returns.index.equals(volume.index)
    cell = observed.iloc[5]
    assert returns.loc[cell["date"], "S0001"] == pytest.approx(cell["ret"])
    assert volume.loc[cell["date"], "S0001"] == cell["volume"]


def test_report_on_clean_data(raw_dir: Path) -> None:
    art = run_chain(raw_dir)
    report = art["ingestion_report"]
    assert list(report.columns) == ["file", "level", "rows_in", "rows_out", "rows_rejected", "rows_added",
                                    "why"]
    assert len(report) == 6 * 5
    assert (report["rows_rejected"] == 0).all() and (report["why"] == "").all()
    raw_rows = int((art["raw_prices"]["file"] == "S0002.csv").sum())
    l0, l2 = report_row(report, "S0002.csv", "L0"), report_row(report, "S0002.csv", "L2")
    assert (l0["rows_in"], l0["rows_out"]) == (raw_rows, raw_rows)
    gaps = int(art["aligned_prices"].query("symbol == 'S0002'")["gap"].sum())
    assert (l2["rows_in"], l2["rows_added"], l2["rows_out"]) == (raw_rows, gaps, raw_rows + gaps)


def test_weekend_rows_are_rejected_at_l2(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "W.csv").write_text("date,symbol,close,volume\n2024-01-05,W,10,100\n2024-01-06,W,11,100\n"
                               "2024-01-08,W,12,100\n")
    art = run_chain(raw)
    row = report_row(art["ingestion_report"], "W.csv", "L2")
    assert (row["rows_in"], row["rows_rejected"], row["rows_out"]) == (3, 1, 2)
    assert row["why"] == "not a business day (weekend) (1 row)"
    assert list(art["returns"].index) == [pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-08")]
    assert art["returns"]["W"].iloc[1] == pytest.approx(12 / 10 - 1)


def test_validator_catches_levels_that_do_not_add_up(raw_dir: Path) -> None:
    art = run_chain(raw_dir)
    tampered = art["prices"].iloc[5:].reset_index(drop=True)
    tampered.attrs = art["prices"].attrs  # claims the rows it no longer has
    with pytest.raises(IngestionError) as info:
        stages.validate_ingestion(raw_prices=art["raw_prices"], prices=tampered,
                                  aligned_prices=art["aligned_prices"], features=art["features"],
                                  returns=art["returns"], volume=art["volume"])
    assert "L1 S0000.csv: the log says" in str(info.value)
    other = art["returns"].drop(columns=["S0003"])
    with pytest.raises(IngestionError, match="L4 returns: its 5 symbol columns are not the 6"):
        stages.validate_ingestion(raw_prices=art["raw_prices"], prices=art["prices"],
                                  aligned_prices=art["aligned_prices"], features=art["features"],
                                  returns=other, volume=art["volume"])


def test_validator_rejected_fraction_limit(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "A.csv").write_text("date,symbol,close,volume\n2024-01-02,A,x,1\n2024-01-03,A,y,1\n"
                               "2024-01-04,A,3,1\n")
    art = run_chain(raw)
    assert report_row(art["ingestion_report"], "A.csv", "L1")["rows_rejected"] == 2
    with pytest.raises(IngestionError, match=r"2 of 3 raw rows rejected \(66.7%\), more than the 50.0% "
                                             r"allowed; most from: A.csv \(2\)"):
        run_chain(raw, validate_ingestion={"max_rejected_fraction": 0.5})


def test_contracts_catch_a_frame_that_breaks_them(raw_dir: Path) -> None:
    by_name = {s.name: s for s in dataops_stages()}
    art = run_chain(raw_dir)
    broken = art["prices"].drop(columns=["volume"]).assign(close=-art["prices"]["close"])
    with pytest.raises(ContractError) as info:
        checker().check(by_name["align_calendar"], "input", {"prices": broken})
    text = str(info.value)
    assert "stage 'align_calendar' input 'prices' breaks its contract (DataFrameSchema 'L1 prices')" in text
    assert "column 'volume'" in text and "column_in_dataframe" in text
    assert f"greater_than(0)      {len(broken)}" in text


def test_stages_can_be_called_directly(raw_dir: Path) -> None:
    raw = stages.read_raw_prices(raw_dir=raw_dir)
    prices = stages.clean_prices(raw_prices=raw)
    with pytest.raises(ValueError, match="window must be an integer of at least 2"):
        stages.compute_features(aligned_prices=stages.align_calendar(prices=prices), window=1)
    with pytest.raises(ValueError, match="on_bad_file must be"):
        stages.read_raw_prices(raw_dir=raw_dir, on_bad_file="ignore")
