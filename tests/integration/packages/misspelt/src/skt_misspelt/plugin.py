"""A plugin with a misspelt hook name (stagekit_register_stage, without the s)."""

from __future__ import annotations

import os
from collections.abc import Callable

from stagekit import Stage, hookimpl, stage

if os.environ.get("SKT_IMPORT_LOG"):  # lets the tests prove whether this module was ever imported
    with open(os.environ["SKT_IMPORT_LOG"], "a", encoding="utf-8") as _log:
        _log.write(f"{__name__}\n")


@stage(provides=["typo"])
def misspelt_stage() -> str:
    return "never registered"


@hookimpl
def stagekit_register_stage(register: Callable[[Stage], None]) -> None:
    register(misspelt_stage)
