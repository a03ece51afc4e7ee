"""Merging two branches that each add 10 columns to a 1,000,000-row DataFrame, against a plain concat.

Run: ``python benchmarks/merge_dataframe.py [--rows N] [--repeat K]``. Prints the median time of
``MergeTable.merge(base, [branch_a, branch_b])`` and of ``pd.concat(<the 20 added columns>, axis=1)``,
measured interleaved in one run, and their ratio (target: at most 2x). Also shows the slow path: both
branches copied their frame (``df.copy()``), so base columns are compared by value, not recognised by memory.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from stagekit import builtin_merge_table


def _frames(rows: int, base_columns: int, added: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    base = pd.DataFrame({f"base{i}": rng.random(rows) for i in range(base_columns)})
    base["name"] = pd.Series(rng.integers(0, 1000, rows)).astype(str)  # a string (arrow) column too
    branch_a = base.assign(**{f"a{i}": rng.random(rows) for i in range(added)})
    branch_b = base.assign(**{f"b{i}": rng.random(rows) for i in range(added)})
    return base, branch_a, branch_b


def _time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--base-columns", type=int, default=5)
    parser.add_argument("--added", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=201)
    args = parser.parse_args()

    base, branch_a, branch_b = _frames(args.rows, args.base_columns, args.added)
    added = [branch_a[c] for c in branch_a.columns if c not in base.columns]
    added += [branch_b[c] for c in branch_b.columns if c not in base.columns]
    table = builtin_merge_table()

    merged = table.merge(base, [branch_a, branch_b])
    expected = list(base.columns) + [s.name for s in added]
    assert list(merged.columns) == expected, "the merge returned the wrong columns"
    assert all(np.shares_memory(merged[c].to_numpy(), branch_a[c].to_numpy()) for c in ("a0", "base0"))

    cases: dict[str, Callable[[], Any]] = {
        "MergeTable.merge(base, [a, b])": lambda: table.merge(base, [branch_a, branch_b]),
        "pd.concat(20 added columns, axis=1)": lambda: pd.concat(added, axis=1),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):  # interleaved, so drift hits both alike
        for name, fn in cases.items():
            times[name].append(_time(fn))
    medians = {name: statistics.median(ts) for name, ts in times.items()}

    print(f"{args.rows:,} rows; base {args.base_columns + 1} columns; each branch adds {args.added}; "
          f"median of {args.repeat}")
    for name, median in medians.items():
        print(f"  {name:<40} {median * 1e3:8.3f} ms")
    merge_s, concat_s = medians.values()
    ratio = merge_s / concat_s
    print(f"  ratio merge / concat: {ratio:.2f}x (target <= 2x) {'OK' if ratio <= 2 else 'OVER TARGET'}")

    # both branches copied their frame: same values, new memory, so every base column is compared by value
    copies = [branch_a.copy(), branch_b.copy()]
    slow = [_time(lambda: table.merge(base, copies)) for _ in range(max(5, args.repeat // 20))]
    print(f"  slow path, both branches copied their frames (base columns compared by value): "
          f"{statistics.median(slow) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
