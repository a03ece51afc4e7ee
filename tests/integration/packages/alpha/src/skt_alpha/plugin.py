"""Makes numbers and doubles them; the doubling is named lazily: listing stages never imports it."""

from __future__ import annotations

import os
from collections.abc import Callable

from stagekit import Stage, hookimpl, stage

if os.environ.get("SKT_IMPORT_LOG"):  # lets the tests prove whether this module was ever imported
    with open(os.environ["SKT_IMPORT_LOG"], "a", encoding="utf-8") as _log:
        _log.write(f"{__name__}\n")


@stage(provides=["numbers"], params={"count": 5}, tags=["itest"])
def alpha_numbers(count: int) -> list[int]:
    """The numbers 1..count."""
    return list(range(1, count + 1))


alpha_double = stage(
    "skt_alpha.work:double", name="alpha_double", requires=["numbers"], provides=["doubled"], tags=["itest"],
    description="Each number doubled (imported when the stage first runs).",
)


@stage(requires=["numbers"], provides=["never"], tags=["failing"])
def alpha_explode(numbers: list[int]) -> None:
    """Fails on purpose."""
    raise ValueError(f"alpha_explode refuses {len(numbers)} numbers")


@hookimpl
def stagekit_register_stages(register: Callable[[Stage], None]) -> None:
    register(alpha_numbers)
    register(alpha_double)
    register(alpha_explode)
