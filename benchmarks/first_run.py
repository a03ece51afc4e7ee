"""A fresh process that defines N no-op stages and runs them once, with the default host (the installed
plugins), against Hamilton building and executing the same DAG (target: stagekit no slower).

Each side runs as its own fresh interpreter, interleaved with the other so that machine noise hits both alike;
the figure is the wall time of the whole process minus the bare interpreter's start-up (``python -c pass``),
median of the runs. The DAG is a chain of fan-outs: stage i requires the output of stage i // 2 (a binary tree),
so both tools resolve real dependencies. Also printed: what defining one stage costs in-process, and what
building the first host costs.

    python benchmarks/first_run.py [--stages N] [--runs N]

Hamilton comes from ``pip install sf-hamilton``; without it only stagekit's figures print.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGEKIT = '''
import time
t0 = time.perf_counter()
from stagekit import Pipeline, stage

def noop(**inputs):
    return 1

stages = [stage(noop, name="s0", provides=["a0"])]
stages += [stage(noop, name=f"s{i}", requires=[f"a{i // 2}"], provides=[f"a{i}"]) for i in range(1, N)]
result = Pipeline(stages).run()
assert result.ok and len(result.stages) == N
'''

HAMILTON = '''
import sys
sys.path.insert(0, FOLDER)
from hamilton import driver
import nodes

dr = driver.Builder().with_modules(nodes).build()
out = dr.execute([f"a{i}" for i in range(N)])
assert len(out) == N
'''


def hamilton_module(n: int) -> str:
    lines = ["def a0() -> int:\n    return 1\n"]
    lines += [f"def a{i}(a{i // 2}: int) -> int:\n    return 1\n" for i in range(1, n)]
    return "\n\n".join(lines)


# Hamilton reports usage over the network unless told not to: that is not what is measured here
ENV = {**os.environ, "HAMILTON_TELEMETRY_ENABLED": "false"}


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
    return time.perf_counter() - start


def in_process_define_cost(n: int = 20_000) -> float:
    from stagekit import stage

    def noop(a: int) -> int:
        return a

    start = time.perf_counter()
    for i in range(n):
        stage(noop, name=f"s{i}", requires=["a"], provides=[f"b{i}"])
    return (time.perf_counter() - start) / n


def first_host_cost() -> float:
    code = "import time; from stagekit import Host; t = time.perf_counter(); Host.installed(); " \
           "print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    n = args.stages
    try:
        import hamilton  # noqa: F401

        have_hamilton = True
    except ImportError:
        have_hamilton = False
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "nodes.py").write_text(hamilton_module(n))
        stagekit_code = f"N = {n}\n" + STAGEKIT
        hamilton_code = f"N = {n}\nFOLDER = {folder!r}\n" + HAMILTON
        timed(stagekit_code)  # warm the file cache and the bytecode caches of both
        if have_hamilton:
            timed(hamilton_code)
        bare, ours, theirs = [], [], []
        for _ in range(args.runs):
            bare.append(timed("pass"))
            ours.append(timed(stagekit_code))
            if have_hamilton:
                theirs.append(timed(hamilton_code))
    base = statistics.median(bare)
    mine = statistics.median(ours) - base
    print(f"{n} no-op stages, defined and run once in a fresh process (median of {args.runs}, "
          f"python start-up {base * 1000:.0f} ms subtracted)")
    print(f"  stagekit, default host:     {mine * 1000:7.1f} ms")
    if have_hamilton:
        other = statistics.median(theirs) - base
        print(f"  Hamilton build + execute:   {other * 1000:7.1f} ms   stagekit / Hamilton = {mine / other:.2f}"
              f"  (target <= 1.00: {'met' if mine <= other else 'NOT met'})")
    define = in_process_define_cost()
    print(f"  defining one stage:         {define * 1e6:7.2f} us   (target <= 10 us: "
          f"{'met' if define <= 10e-6 else 'NOT met'})")
    print(f"  building the first host:    {first_host_cost() * 1000:7.1f} ms   (entry points of the installed plugins)")


if __name__ == "__main__":
    main()
