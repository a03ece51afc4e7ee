"""The bulk source of returns: a parquet dataset of long rows, read with pandas (Ray: stagekit-ray's tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stagekit_dataops.bulk import load_returns_matrix, returns_matrix

from stagekit import Host, Pipeline


def rows() -> pd.DataFrame:
    dates = pd.bdate_range("2024-01-01", periods=4)
    return pd.DataFrame({
        "date": list(dates) + list(dates[[0, 2, 3]]),
        "symbol": ["AAA"] * 4 + ["BBB"] * 3,
        "close": [10.0, 11.0, 12.1, 12.1, 20.0, 22.0, 11.0],
    })


def test_the_matrix_is_returns_against_the_previous_known_close() -> None:
    m = returns_matrix(rows())
    assert list(m.columns) == ["AAA", "BBB"] and m.index.is_unique and m.index.is_monotonic_increasing
    assert np.allclose(m["AAA"].to_numpy()[1:], [0.1, 0.1, 0.0])
    assert np.isnan(m.loc["2024-01-02", "BBB"])  # a gap stays a gap
    assert m.loc["2024-01-03", "BBB"] == pytest.approx(0.1) and m.loc["2024-01-04", "BBB"] == pytest.approx(-0.5)


def test_the_stage_reads_a_parquet_dataset_and_is_chosen_when_it_is_given(tmp_path: Path) -> None:
    data = tmp_path / "prices"
    data.mkdir()
    frame = rows()
    frame.iloc[:4].to_parquet(data / "part-0.parquet")
    frame.iloc[4:].to_parquet(data / "part-1.parquet")
    assert load_returns_matrix(str(data)).equals(returns_matrix(frame))
    host = Host(autoload=True, allow=["dataops"], env={})
    pipeline = Pipeline.from_host(host, targets=["validate_ingestion"], given=["workspace"])
    assert "load_returns_matrix" not in {s.name for s in pipeline.stages}  # the L0-L4 chain is the source
    bulk = Pipeline.from_host(host, names=["load_returns_matrix"])
    assert bulk.run({"prices_dataset": str(data)}).artifacts["returns"].equals(returns_matrix(frame))


def test_duplicates_and_unknown_engines_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="symbol 'AAA' has more than one row for 2024-01-01"):
        returns_matrix(pd.concat([rows(), rows().iloc[:1]]))
    with pytest.raises(ValueError, match="engine must be one of"):
        load_returns_matrix(str(tmp_path), engine="spark")
