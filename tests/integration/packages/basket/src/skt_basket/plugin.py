"""A third-party value type, Basket (item counts), with its own merge (branches' count changes add up), and
an executor of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stagekit import MergeConflictError, SequentialExecutor, hookimpl, stage


class Basket:
    def __init__(self, items: dict[str, int]) -> None:
        self.items = dict(items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Basket) and other.items == self.items

    def __repr__(self) -> str:
        return f"Basket({self.items})"


def merge_baskets(base: Basket | None, branches: list[Basket]) -> Basket:
    start = base.items if base is not None else {}
    merged = dict(start)
    for branch in branches:
        for item, count in branch.items.items():
            merged[item] = merged.get(item, 0) + count - start.get(item, 0)
    if any(count < 0 for count in merged.values()):
        raise MergeConflictError(f"the branches removed more than there was: {merged}")
    return Basket(merged)


def fill() -> Basket:
    return Basket({"apple": 1})


def add(basket: Basket, item: str, count: int) -> Basket:
    return Basket({**basket.items, item: basket.items.get(item, 0) + count})


def save(basket: Basket, out: str) -> None:
    Path(out).write_text(json.dumps(basket.items, sort_keys=True))


STAGES = [
    stage(fill, name="basket_fill", provides=["basket"], types={"basket": Basket}),
    stage(add, name="basket_add_apples", requires=["basket"], provides=["basket"], types={"basket": Basket},
          params={"item": "apple", "count": 2}),
    stage(add, name="basket_add_pears", requires=["basket"], provides=["basket"], types={"basket": Basket},
          params={"item": "pear", "count": 3}),
    stage(save, name="basket_save", requires=["basket", "out"]),
]


@hookimpl
def stagekit_register_stages(register: Any) -> None:
    for s in STAGES:
        register(s)


@hookimpl
def stagekit_register_merges(register: Any) -> None:
    register(Basket, merge_baskets)


class BasketExecutor(SequentialExecutor):
    """One stage at a time, counting them: a third-party executor."""

    name = "basket-serial"
    submitted = 0

    def submit(self, task: Any) -> None:
        BasketExecutor.submitted += 1
        super().submit(task)


def make_executor(workers: int | None = None, host: Any = None) -> BasketExecutor:
    return BasketExecutor(workers)


@hookimpl
def stagekit_register_executors(register: Any) -> None:
    register("basket-serial", make_executor)
