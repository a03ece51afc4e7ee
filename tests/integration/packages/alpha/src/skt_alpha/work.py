"""The stage function behind the lazy reference "skt_alpha.work:double"."""

from __future__ import annotations

import os

if os.environ.get("SKT_IMPORT_LOG"):  # lets the tests prove whether this module was ever imported
    with open(os.environ["SKT_IMPORT_LOG"], "a", encoding="utf-8") as _log:
        _log.write(f"{__name__}\n")


def double(numbers: list[int]) -> list[int]:
    return [2 * n for n in numbers]
