"""Stage functions importable by module name, so that process workers can run them."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from stagekit import stage


def echo(**artifacts: Any) -> Any:
    """Returns a deterministic value from its inputs (used by generated DAGs)."""
    return sorted((k, repr(v)) for k, v in artifacts.items())


def add_key(key: str, value: int, **artifacts: Any) -> dict[str, Any]:
    (current,) = artifacts.values()
    return {**current, key: value}


def make_dict() -> dict[str, int]:
    return {"base": 1}


def boom(**artifacts: Any) -> Any:
    raise ValueError("the data is bad")


def die(**artifacts: Any) -> Any:
    os._exit(3)


def segfault(**artifacts: Any) -> Any:
    os.kill(os.getpid(), signal.SIGSEGV)


def slow(seconds: float = 30.0, **artifacts: Any) -> int:
    time.sleep(seconds)
    return 1


def make_lock() -> Any:
    return threading.Lock()  # cannot be pickled


def identity(x: Any) -> Any:
    return x


def burn(seconds: float = 1.0, **artifacts: Any) -> int:
    end, n = time.process_time() + seconds, 0
    while time.process_time() < end:
        n += 1
    return n


make = stage(make_dict, name="make", provides=["d"])
upd_a = stage(add_key, name="upd_a", requires=["d"], provides=["d"], params={"key": "a", "value": 1})
upd_b = stage(add_key, name="upd_b", requires=["d"], provides=["d"], params={"key": "b", "value": 2})
read_d = stage(echo, name="read_d", requires=["d"], provides=["out"])
