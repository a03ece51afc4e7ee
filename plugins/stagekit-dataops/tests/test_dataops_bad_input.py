"""Bad raw input: each kind is rejected in the report (file, rows, why) or fails clearly, never half-read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataops_helpers import report_row, run_chain
from stagekit_dataops import RawDataError, stages

HEADER = "date,symbol,close,volume\n"


def good_parquet(path: Path, rows: int = 7) -> bytes:
    table = pa.table({"date": [f"2024-01-{d:02d}" for d in range(1, rows + 1)], "symbol": ["P"] * rows,
                      "close": [10.0 + d for d in range(rows)], "volume": list(range(100, 100 + rows))})
    pq.write_table(table, path)
    return path.read_bytes()


@pytest.fixture
def messy_dir(raw_dir: Path) -> Path:
    """The clean fixture plus one file of each bad kind."""
    data = good_parquet(raw_dir / "P.parquet")
    (raw_dir / "P.parquet").unlink()
    (raw_dir / "TRUNCATED.parquet").write_bytes(data[: len(data) // 2])  # footer gone: rows unknown
    broken = bytearray(data)
    broken[8:60] = b"\xff" * 52  # page header destroyed, footer intact: rows known
    (raw_dir / "BROKEN.parquet").write_bytes(bytes(broken))
    (raw_dir / "WRONG.csv").write_text("date,ticker,price,volume\n2024-01-02,W,1,1\n2024-01-03,W,2,1\n"
                                       "2024-01-04,W,3,1\n")
    (raw_dir / "EMPTY.csv").write_bytes(b"")
    (raw_dir / "HEADER.csv").write_text(HEADER)
    (raw_dir / "DUP.csv").write_text(HEADER + "2024-01-02,DUP,10,1\n2024-01-03,DUP,11,1\n"
                                     "2024-01-03,DUP,12,1\n2024-01-04,DUP,13,1\n")
    (raw_dir / "NAN.csv").write_text(HEADER + "2024-01-02,NAN,10,1\n2024-01-03,NAN,ten,1\n"
                                     "2024-01-04,NAN,12,1\n2024-01-05,NAN,-1,1\n2024-01-08,NAN,13,lots\n")
    (raw_dir / "RAGGED.csv").write_text(HEADER + "2024-01-02,R,10,1\n2024-01-03,R,11,1,extra\n")
    (raw_dir / "notes.txt").write_text("not prices")
    return raw_dir


def test_every_bad_file_is_reported_and_the_rest_ingested(messy_dir: Path) -> None:
    art = run_chain(messy_dir)  # contracts strict at every boundary: the good data passes them
    report = art["ingestion_report"]
    rejected_whole = {
        "TRUNCATED.parquet": (0, "corrupt parquet file (row count unknown): ArrowInvalid"),
        "BROKEN.parquet": (7, "corrupt parquet file: OSError"),
        "WRONG.csv": (3, "missing column(s) symbol, close (the file has: date, ticker, price, volume)"),
        "EMPTY.csv": (0, "empty file (0 bytes)"),
        "HEADER.csv": (0, "empty file (a header but no rows)"),
        "RAGGED.csv": (2, "unreadable CSV: ArrowInvalid: CSV parse error: Expected 4 columns, got 5"),
        "notes.txt": (0, "not a raw price file"),
    }
    for file, (rows, why) in rejected_whole.items():
        row = report_row(report, file, "L0")
        assert (row["rows_in"], row["rows_out"], row["rows_rejected"]) == (rows, 0, rows), file
        assert why in row["why"], (file, row["why"])
        assert (report["file"] == file).sum() == 1, f"{file} should stop at L0"
        assert file not in set(art["raw_prices"]["file"]), f"nothing of {file} may be half-read"

    dup = report_row(report, "DUP.csv", "L1")
    assert (dup["rows_in"], dup["rows_rejected"], dup["rows_out"]) == (4, 1, 3)
    assert dup["why"] == "duplicate (symbol, date): a later row replaces it (1 row)"
    kept = art["prices"].query("symbol == 'DUP'")
    assert kept["close"].tolist() == [10.0, 12.0, 13.0]  # the later row of 2024-01-03 wins

    nan = report_row(report, "NAN.csv", "L1")
    assert (nan["rows_in"], nan["rows_rejected"], nan["rows_out"]) == (5, 3, 2)
    assert nan["why"] == ("close is not a number (1 row); close is not positive (1 row); "
                          "volume is not a number (1 row)")
    assert set(art["returns"].columns) == {"DUP", "NAN", "S0000", "S0001", "S0002", "S0003", "S0004", "S0005"}


def test_bad_values_of_every_kind_get_a_reason(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "V.csv").write_text(
        HEADER
        + ",V,1,1\n"  # no date
        + "2024-02-30,V,1,1\n"  # impossible date
        + "9999-01-01,V,1,1\n"  # absurd date
        + "2024-01-02,,1,1\n"  # no symbol
        + "2024-01-03,V,,1\n"  # no close
        + "2024-01-04,V,inf,1\n"  # close not finite
        + "2024-01-05,V,0,1\n"  # close not positive
        + "2024-01-08,V,5,-3\n"  # negative volume
        + "2024-01-09,V,5,\n"  # missing volume: kept as NaN
        + "2024-01-10T16:00:00+02:00,V,6,1\n"  # a timestamp: its calendar date
    )
    art = run_chain(raw)
    why = report_row(art["ingestion_report"], "V.csv", "L1")["why"]
    for reason in ("missing date (1 row)", "unparseable date, or not between 1900 and 2200 (2 rows)",
                   "missing symbol (1 row)", "missing close (1 row)", "close is not finite (1 row)",
                   "close is not positive (1 row)", "volume is negative (1 row)"):
        assert reason in why, why
    prices = art["prices"]
    assert prices["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-09", "2024-01-10"]
    assert prices["volume"].isna().tolist() == [True, False]


def test_on_bad_file_error_names_the_file_and_its_rows(messy_dir: Path) -> None:
    with pytest.raises(RawDataError) as info:
        stages.read_raw_prices(raw_dir=messy_dir, on_bad_file="error")
    err = info.value
    assert (err.file, err.rows) == ("BROKEN.parquet", 7)  # the first bad file by name
    text = str(err)
    assert "BROKEN.parquet (7 rows): corrupt parquet file" in text
    assert "WRONG.csv (3 rows): missing column(s) symbol, close" in text


def test_no_usable_file_is_an_error(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    with pytest.raises(RawDataError, match="no raw price files in"):
        stages.read_raw_prices(raw_dir=raw)
    (raw / "EMPTY.csv").write_bytes(b"")
    (raw / "WRONG.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RawDataError, match=r"all 2 raw files were rejected") as info:
        stages.read_raw_prices(raw_dir=raw)
    assert "WRONG.csv (1 rows): missing column(s) date, symbol, close, volume" in str(info.value)
    with pytest.raises(RawDataError, match="does not exist"):
        stages.read_raw_prices(raw_dir=tmp_path / "nowhere")


def test_all_rows_unusable_is_an_error_naming_why(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "X.csv").write_text(HEADER + "2024-01-02,X,abc,1\n2024-01-03,X,-1,1\n")
    prices_stage = stages.read_raw_prices(raw_dir=raw)
    with pytest.raises(RawDataError, match=r"all 2 raw rows were rejected \(1 close is not a number; "
                                            r"1 close is not positive\)"):
        stages.clean_prices(raw_prices=prices_stage)


def test_hidden_files_are_ignored(raw_dir: Path) -> None:
    (raw_dir / ".S0009.csv.x1y2.tmp").write_text("half-written")  # an atomic write in progress
    raw = stages.read_raw_prices(raw_dir=raw_dir)
    assert sorted(set(raw["file"])) == [f"S000{i}.{'csv' if i % 2 == 0 else 'parquet'}" for i in range(6)]
