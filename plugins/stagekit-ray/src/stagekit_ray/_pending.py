"""Executors waiting to release their Ray session once their run's result is built.

The runner calls ``executor.shutdown()`` *before* it materializes the final artifacts, so a cluster the
executor started cannot be stopped there. ``stagekit_after_run`` fires after the result is built, in the
thread that ran the run: the plugin's hook closes the executors that thread deferred. Held weakly, so an
executor whose run fired no hook is still closed when it is collected (or at exit). Imports no Ray.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

_LOCK = threading.Lock()
_BY_THREAD: dict[int, weakref.WeakSet[Any]] = {}


def defer(executor: Any) -> None:
    """Close ``executor`` at the end of the run going on in this thread."""
    with _LOCK:
        _BY_THREAD.setdefault(threading.get_ident(), weakref.WeakSet()).add(executor)


def take() -> list[Any]:
    """The executors this thread deferred (forgotten here: the caller closes them)."""
    with _LOCK:
        found = _BY_THREAD.pop(threading.get_ident(), None)
    return list(found) if found is not None else []
