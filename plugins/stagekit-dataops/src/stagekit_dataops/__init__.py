"""stagekit-dataops: ingestion stages from raw daily price files to a returns matrix, with L0-L4 contracts.

Importing this package imports no pandas nor pandera: the stages live in ``stagekit_dataops.stages``, the
contracts in ``stagekit_dataops.schemas``, both imported only when a stage runs or a contract is checked.
"""

from __future__ import annotations

from stagekit_dataops.errors import IngestionError, RawDataError

__all__ = ["IngestionError", "RawDataError"]
