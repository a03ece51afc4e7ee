"""Registers a stage named like one of stagekit-itest-alpha's: loading both must be an error naming both."""

from __future__ import annotations

import os
from collections.abc import Callable

from stagekit import Stage, hookimpl, stage

if os.environ.get("SKT_IMPORT_LOG"):  # lets the tests prove whether this module was ever imported
    with open(os.environ["SKT_IMPORT_LOG"], "a", encoding="utf-8") as _log:
        _log.write(f"{__name__}\n")


@stage(provides=["numbers"], name="alpha_numbers")
def other_numbers() -> list[int]:
    return [42]


@hookimpl
def stagekit_register_stages(register: Callable[[Stage], None]) -> None:
    register(other_numbers)
