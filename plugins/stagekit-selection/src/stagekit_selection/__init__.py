"""stagekit-selection: select a universe of symbols with parallel, mergeable refinements.

Importing this package imports no pandas; the stage functions live in ``stagekit_selection.stages``.
"""

from __future__ import annotations

from stagekit import FrozenMap
from stagekit_selection.context import AuditEntry, SelectionContext
from stagekit_selection.merge import merge_selection

__all__ = ["AuditEntry", "FrozenMap", "SelectionContext", "merge_selection"]
