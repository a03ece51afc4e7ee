"""The ingestion stage functions, imported the first time one of them runs (this imports pandas).

``plugin.py`` registers them lazily as ``"stagekit_dataops.stages:<name>"``; each also works as a plain
function, e.g. ``clean_prices(raw_prices=df)``.
"""

from __future__ import annotations

from stagekit_dataops.align import align_calendar
from stagekit_dataops.clean import clean_prices
from stagekit_dataops.features import build_returns_matrix, compute_features
from stagekit_dataops.rawfiles import read_raw_prices
from stagekit_dataops.report import IngestionValidator, validate_ingestion

__all__ = [
    "IngestionValidator",
    "align_calendar",
    "build_returns_matrix",
    "clean_prices",
    "compute_features",
    "read_raw_prices",
    "validate_ingestion",
]
