"""Stages for the Ray fault tests (issue 13), importable by module name in Ray workers."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import attrs
import pandas as pd

log = logging.getLogger("rayfaults")


@attrs.frozen
class Box:
    items: tuple[int, ...] = ()


def make_box() -> Box:
    return Box((0,))


def add_item(box: Box, item: int) -> Box:
    return Box((*box.items, item))


def ok(**artifacts: Any) -> int:
    return 1


def logs_info() -> int:
    log.info("hello from %s", "a Ray worker")
    log.debug("not kept at INFO")
    return 1


def exits() -> Any:
    sys.exit(3)


def fails(seconds: float = 0.0) -> Any:
    time.sleep(seconds)
    raise ValueError("the data is bad")


def hangs(seconds: float = 60.0, **artifacts: Any) -> int:
    time.sleep(seconds)
    return 1


def make_dict() -> dict[str, int]:
    return {"base": 1}


def add_key(key: str, value: int, **artifacts: Any) -> dict[str, Any]:
    (current,) = artifacts.values()
    return {**current, key: value}


def make_frame() -> pd.DataFrame:
    return pd.DataFrame({"v": [1, 2, 3]})


def mutate_frame(frame: pd.DataFrame) -> int:
    frame["v"] = frame["v"] * 100  # in place: the stage's own copy-on-write copy changes, nothing else
    frame.loc[1, "v"] = -1
    frame.drop(index=0, inplace=True)
    return len(frame)


def sum_frame(frame: pd.DataFrame) -> int:
    return int(frame["v"].sum())
