"""The installed version of stagekit, read from its distribution metadata once."""

from __future__ import annotations

from functools import cache


@cache
def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("stagekit")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"
