"""Shared fixtures: small synthetic raw directories."""

from __future__ import annotations

from pathlib import Path

import pytest
from stagekit_dataops import synthetic


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """Six symbols over a quarter of a year, CSV and parquet in turn (with gaps and a late listing)."""
    directory = tmp_path / "raw"
    synthetic.generate(directory, symbols=6, years=0.25, seed=3, missing_rate=0.05, late_listing=0.3)
    return directory
