"""A plugin whose import raises: stagekit must report it and load the others."""

from __future__ import annotations

import os

if os.environ.get("SKT_IMPORT_LOG"):  # lets the tests prove whether this module was ever imported
    with open(os.environ["SKT_IMPORT_LOG"], "a", encoding="utf-8") as _log:
        _log.write(f"{__name__}\n")

raise RuntimeError("skt_broken cannot start: the licence key is missing")
