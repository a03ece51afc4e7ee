"""Runner overhead per no-op stage: chain and fan-out at 1,000 / 10,000 / 100,000 stages.

One lifecycle hook implementation is registered (stagekit_after_stage), as the issue asks. The time
measured is the whole ``Pipeline.run`` (DAG build and validation, version planning, the loop, the hooks,
the result), divided by the number of stages. Prints medians of several repeats.

    python benchmarks/runner_overhead.py [--sizes 1000,10000,100000] [--executor sequential] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import graphlib
import statistics
import sys
import time
from typing import Any

import pluggy

from stagekit import Host, Pipeline, hookimpl, stage


def noop(**artifacts: Any) -> int:
    return 1


class CountStages:
    def __init__(self) -> None:
        self.count = 0

    @hookimpl
    def stagekit_after_stage(self, run: Any, stage: Any, record: Any) -> None:
        self.count += 1


def chain(n: int) -> list[Any]:
    stages = [stage(noop, name="s0", provides=["a0"])]
    stages += [stage(noop, name=f"s{i}", requires=[f"a{i - 1}"], provides=[f"a{i}"]) for i in range(1, n)]
    return stages


def fan_out(n: int) -> list[Any]:
    stages = [stage(noop, name="root", provides=["x"])]
    stages += [stage(noop, name=f"s{i}", requires=["x"], provides=[f"y{i}"]) for i in range(1, n)]
    return stages


def measure(stages: list[Any], executor: str, workers: int | None, repeat: int) -> tuple[float, float]:
    """(first run, median of the runs again) per stage: a first run builds and plans the DAG, later runs of
    the same pipeline reuse both, so the second figure is the loop itself."""
    counter = CountStages()
    host = Host(plugins=[("count", counter)], autoload=False, env={})
    pipeline = Pipeline(stages, host=host)
    times = []
    for _ in range(repeat + 1):
        gc.collect()
        start = time.perf_counter()
        pipeline.run(executor=executor, workers=workers)
        times.append(time.perf_counter() - start)
    assert counter.count == (repeat + 1) * len(stages), "the hook must fire once per stage"
    return times[0] / len(stages), statistics.median(times[1:]) / len(stages)


class _Spec:
    @pluggy.HookspecMarker("bare")
    def before(self, name: str) -> None: ...

    @pluggy.HookspecMarker("bare")
    def after(self, name: str) -> None: ...


class _Impl:
    @pluggy.HookimplMarker("bare")
    def before(self, name: str) -> None:
        pass

    @pluggy.HookimplMarker("bare")
    def after(self, name: str) -> None:
        pass


def bare_loop(stages: list[Any], repeat: int) -> float:
    """The reference: a bare graphlib loop calling two pluggy hooks per node, over the same graph."""
    pm = pluggy.PluginManager("bare")
    pm.add_hookspecs(_Spec)
    pm.register(_Impl())
    creators = {a: s.name for s in stages for a in s.provides}
    graph = {s.name: {creators[a] for a in s.requires} for s in stages}
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        ts = graphlib.TopologicalSorter(graph)
        ts.prepare()
        while ts.is_active():
            for node in ts.get_ready():
                pm.hook.before(name=node)
                pm.hook.after(name=node)
                ts.done(node)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / len(stages)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--executor", default="sequential")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"executor={args.executor} python={sys.version.split()[0]} repeat={args.repeat} (median)")
    print("first: a Pipeline's first run (builds, validates and plans the DAG); again: the same pipeline run")
    print("again (the loop, hooks, result); bare: graphlib + two pluggy hooks per node, measured alongside")
    print(f"{'shape':8} {'stages':>8} {'first us':>9} {'again us':>9} {'bare us':>8} {'again/bare':>10} "
          f"{'growth':>7}")
    for shape, build in (("chain", chain), ("fan-out", fan_out)):
        smallest = None
        for n in sizes:
            repeat = args.repeat if n <= 10_000 else max(1, args.repeat // 2)
            stages = build(n)
            first, again = (t * 1e6 for t in measure(stages, args.executor, args.workers, repeat))
            bare = bare_loop(stages, repeat) * 1e6
            smallest = smallest or again
            print(f"{shape:8} {n:>8} {first:>9.2f} {again:>9.2f} {bare:>8.2f} {again / bare:>10.2f} "
                  f"{again / smallest:>6.2f}x", flush=True)


if __name__ == "__main__":
    main()
