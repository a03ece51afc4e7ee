"""Stages that fail in every way plugin code can, importable by name (process workers import them)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import attrs


class Bail(BaseException):
    """Neither an Exception nor an interrupt: what a careless plugin might raise."""


def ok(**artifacts: Any) -> int:
    return 1


def exits(**artifacts: Any) -> Any:
    sys.exit(3)


def bails(**artifacts: Any) -> Any:
    raise Bail("out of here")


def returns_none(**artifacts: Any) -> Any:
    return None


def fails(seconds: float = 0.0, **artifacts: Any) -> Any:
    time.sleep(seconds)
    raise ValueError("the data is bad")


def dies(seconds: float = 0.0, **artifacts: Any) -> Any:
    time.sleep(seconds)
    os._exit(3)


def hangs(seconds: float = 20.0, **artifacts: Any) -> int:
    time.sleep(seconds)
    return 1


def slow_ok(seconds: float = 0.2, **artifacts: Any) -> int:
    time.sleep(seconds)
    return 1


def make_frame() -> Any:
    import pandas as pd

    return pd.DataFrame({"v": [1, 2, 3]})


def mutate_frame(frame: Any) -> int:
    frame["v"] = frame["v"] * 100
    frame.drop(index=0, inplace=True)  # the point: in-place edits
    frame.loc[1, "v"] = -1
    frame.index.name = "changed"
    return len(frame)


def sum_frame(frame: Any, wait: float = 0.3) -> int:
    time.sleep(wait)  # the mutating sibling goes first
    return int(frame["v"].sum())


def make_array() -> Any:
    import numpy as np

    return np.arange(3)


def mutate_array(array: Any) -> int:
    array[0] = 100
    return 0


def sum_array(array: Any, wait: float = 0.3) -> int:
    time.sleep(wait)
    return int(array.sum())


def make_dict() -> dict[str, int]:
    return {"base": 1}


def mutate_dict(d: dict[str, int]) -> int:
    d["sneaky"] = 1
    return len(d)


def read_dict(d: dict[str, int]) -> int:
    return len(d)


@attrs.frozen
class Box:
    """A value type whose merge a test plugin registers (raising, or returning another type)."""

    items: tuple[int, ...] = ()


def make_box() -> Box:
    return Box((0,))


def add_item(box: Box, item: int, wait: float = 0.0) -> Box:
    time.sleep(wait)
    return Box((*box.items, item))


def add_key_after(key: str, value: int, wait: float = 0.0, **artifacts: Any) -> dict[str, Any]:
    time.sleep(wait)
    (current,) = artifacts.values()
    return {**current, key: value}


def behave(kind: str, me: str, slot: str, **inputs: Any) -> Any:
    """A stage of the property test's random DAGs: ``kind`` is ok, fail, hang, mutate (changes a dict input in
    place, which isolation="strict" reports), frame (changes the frame F in place: its own copy only) or
    clash (an updater setting a key that another concurrent clashing updater sets too: a merge conflict).
    Its value, where it has one, depends only on its inputs: the same under every executor."""
    if kind == "fail":
        raise ValueError(f"{me} fails")
    if kind == "hang":
        time.sleep(30)
    dicts = {k: v for k, v in sorted(inputs.items()) if isinstance(v, dict)}
    if kind == "mutate" and dicts:
        next(iter(dicts.values()))[f"mutated_by_{me}"] = 1
    total = None
    if "F" in inputs:
        frame = inputs["F"]
        if kind == "frame":
            frame["v"] = frame["v"] * 100
            frame.drop(index=0, inplace=True)
        total = int(frame["v"].sum())
    if slot in dicts:  # an updater: the artifact as it came in, plus this stage's own key
        clash = {"clash": me} if kind == "clash" else {}  # two concurrent clashing updaters conflict
        return {**dicts[slot], me: total if total is not None else len(dicts), **clash}
    return {me: total if total is not None else sum(len(d) for d in dicts.values())}
