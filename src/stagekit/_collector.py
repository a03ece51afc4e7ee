"""Keeping the cyclic garbage collector out of bookkeeping that allocates many long-lived objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """For work that runs no user code (building and planning a DAG): the collector would only rescan, again
    and again, objects that all live on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
