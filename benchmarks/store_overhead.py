"""What the run store costs per stage: a 10,000-stage pipeline run with the store on vs off.

Target (issue 14): a 10,000-stage no-op pipeline with the store on costs at most 50 us more per stage than
with it off. Extra per stage = (on - off) / stages, medians of ``--repeats`` rounds, the sides timed in one
process in alternating order. Each figure is one whole ``Pipeline.run`` (sequential executor, a
``Host.isolated()``); building the stages, the pipeline and the temporary workspace is not timed.

Two shapes, each a chain (stage i takes what stage i-1 provided), printed separately:

- passthrough: each stage returns its input unchanged (the no-op): every output has the same content, so the
  object store holds one object and each stage adds a stage record and a reference to it;
- distinct: each stage returns its input + 1, a distinct small int: each output is a new object in the store.

For each shape three runs: off (``workspace=None``: no store at all), on, first run (a fresh workspace:
every stage runs, its output is stored and the stage run recorded; the recorder commits records in groups,
``stagekit.store.recorder.GROUP_SECONDS``), and on, run again (the same workspace, a new ``Pipeline``:
every stage is reused from the store, "cached"), each against off::

A reference is measured in the same run: writing as many small files as the distinct shape stores, each
created in a temporary folder, closed, read back and renamed into a fan-out folder (what storing one new
object costs the filesystem, whatever stagekit does around it).

    python benchmarks/store_overhead.py                       # 10,000 stages, 3 rounds (about a minute)
    python benchmarks/store_overhead.py --stages 2000 --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from stagekit import Host, Pipeline, stage

TARGET_US = 50.0


def passthrough(**artifacts: Any) -> Any:
    (value,) = artifacts.values()
    return value


def increment(**artifacts: Any) -> int:
    (value,) = artifacts.values()
    return value + 1


def chain(func: Callable[..., Any], n: int) -> list[Any]:
    stages = [stage(func, name="s0", requires=["x"], provides=["a0"])]
    stages += [stage(func, name=f"s{i}", requires=[f"a{i - 1}"], provides=[f"a{i}"]) for i in range(1, n)]
    return stages


def timed_run(stages: list[Any], workspace: str | None) -> tuple[float, Any]:
    pipeline = Pipeline(stages, host=Host.isolated())
    gc.collect()
    start = time.perf_counter()
    result = pipeline.run({"x": 0}, executor="sequential", workspace=workspace)
    return time.perf_counter() - start, result


def statuses(result: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in result.stages.values():
        counts[record.status] = counts.get(record.status, 0) + 1
    return counts


def measure(stages: list[Any], repeats: int, root: str | None) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"off": [], "on": [], "again": []}
    n = len(stages)
    for r in range(repeats):
        workspace = tempfile.mkdtemp(prefix="store-overhead-", dir=root)
        try:
            for side in ("off", "on") if r % 2 == 0 else ("on", "off"):  # who goes first alternates
                if side == "off":
                    times["off"].append(timed_run(stages, None)[0])
                    continue
                elapsed, result = timed_run(stages, workspace)
                assert statuses(result).get("ok") == n, f"a first run must run every stage: {statuses(result)}"
                times["on"].append(elapsed)
                elapsed, result = timed_run(stages, workspace)
                assert statuses(result).get("cached") == n, f"a run again must reuse every stage: {statuses(result)}"
                times["again"].append(elapsed)
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
        print(f"  round {r + 1}: off {times['off'][-1]:.2f}s  on, first run {times['on'][-1]:.2f}s  "
              f"on, run again {times['again'][-1]:.2f}s", flush=True)
    return times


def object_floor(n: int, root: str | None) -> float:
    """Seconds to create n small files (write, close, read back, rename into one of 256 folders)."""
    base = tempfile.mkdtemp(prefix="floor-", dir=root)
    try:
        tmp, objects = os.path.join(base, "tmp"), os.path.join(base, "objects")
        os.makedirs(tmp)
        for i in range(256):
            os.makedirs(os.path.join(objects, f"{i:02x}"))
        start = time.perf_counter()
        for i in range(n):
            path = f"{tmp}/{i}"
            with open(path, "wb") as f:
                f.write(str(i).encode())
            with open(path, "rb") as f:
                f.read()
            os.replace(path, f"{objects}/{i % 256:02x}/{i}")
        return time.perf_counter() - start
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _spread(times: list[float]) -> str:
    return f"({min(times):.3f}-{max(times):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", type=int, default=10_000, help="stages in each chain (default 10000)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are compared (default 3)")
    parser.add_argument("--shapes", default="passthrough,distinct", help="which shapes (default both)")
    parser.add_argument("--dir", default=None, help="where the temporary workspaces go (default: the system's)")
    args = parser.parse_args()

    shapes = {"passthrough": passthrough, "distinct": increment}
    where = args.dir or tempfile.gettempdir()
    print(f"{args.stages} stages, sequential, python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"workspaces in {where}; {args.repeats} rounds, medians")
    results = {}
    for name in args.shapes.split(","):
        print(f"{name}:", flush=True)
        results[name] = measure(chain(shapes[name], args.stages), args.repeats, args.dir)

    n = args.stages
    print(f"\n{'shape':12} {'run':18} {'median s':>8} {'(min-max)':>15} {'us/stage':>9} {'extra us/stage':>15}  "
          f"{'target':>7}")
    for name, times in results.items():
        off = statistics.median(times["off"])
        print(f"{name:12} {'off (no store)':18} {off:8.3f} {_spread(times['off']):>15} {off / n * 1e6:9.1f}")
        for key, label in (("on", "on, first run"), ("again", "on, run again")):
            on = statistics.median(times[key])
            extra = (on - off) / n * 1e6
            verdict = "MET" if extra <= TARGET_US else "NOT MET"
            print(f"{'':12} {label:18} {on:8.3f} {_spread(times[key]):>15} {on / n * 1e6:9.1f} {extra:15.1f}  "
                  f"{TARGET_US:5.0f}us  {verdict}")
    floors = [object_floor(n, args.dir) for _ in range(args.repeats)]
    floor = statistics.median(floors)
    print(f"\nreference: {n} small files created, read back and renamed: {floor:.3f} s {_spread(floors)}, "
          f"{floor / n * 1e6:.1f} us each (the filesystem's part of storing one new object)")


if __name__ == "__main__":
    main()
