"""Consumes what another distribution (stagekit-itest-alpha) provides; installed editable by the tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from stagekit import Stage, hookimpl, stage

if os.environ.get("SKT_IMPORT_LOG"):  # lets the tests prove whether this module was ever imported
    with open(os.environ["SKT_IMPORT_LOG"], "a", encoding="utf-8") as _log:
        _log.write(f"{__name__}\n")


@stage(requires=["doubled"], provides=["total"], tags=["itest"])
def beta_total(doubled: list[int]) -> int:
    """The sum of the doubled numbers."""
    return sum(doubled)


@stage(requires=["total", "numbers", "out"], provides=["report"], tags=["itest"])
def beta_report(total: int, numbers: list[int], out: str) -> str:
    """Writes a one-line report to the file named by the artifact 'out'."""
    text = f"{len(numbers)} numbers, doubled total {total}\n"
    Path(out).write_text(text, encoding="utf-8")
    return text


@hookimpl
def stagekit_register_stages(register: Callable[[Stage], None]) -> None:
    register(beta_total)
    register(beta_report)
