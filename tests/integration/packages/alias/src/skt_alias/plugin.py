"""Another distribution's plugin under the entry-point name 'alpha': both must stay accountable."""

from __future__ import annotations

import os
from collections.abc import Callable

from stagekit import Stage, hookimpl, stage

if os.environ.get("SKT_IMPORT_LOG"):  # lets the tests prove whether this module was ever imported
    with open(os.environ["SKT_IMPORT_LOG"], "a", encoding="utf-8") as _log:
        _log.write(f"{__name__}\n")


@stage(provides=["alias"])
def alias_stage() -> str:
    return "from the alias distribution"


@hookimpl
def stagekit_register_stages(register: Callable[[Stage], None]) -> None:
    register(alias_stage)
