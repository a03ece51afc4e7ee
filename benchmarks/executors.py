"""Executors side by side: per-stage overhead, parallel speed-up, and the memory cost of a fan-out.

    python benchmarks/executors.py [--quick]

1. No-op stage overhead (median us/stage) for sequential, thread and process, fan-out of N stages.
2. Two CPU-bound branches of about 1 s each: wall time under process vs sequential (target <= 0.6x).
3. Fanning a ~1 GB DataFrame out to 8 branches under the thread executor: peak resident memory of the run
   above the frame itself, in a fresh process (target: at most 20% of one copy).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from stagekit import Pipeline, Stage  # noqa: E402


def noop(**artifacts: Any) -> int:
    return 1


def burn(seconds: float = 1.0) -> int:
    end, n = time.process_time() + seconds, 0
    while time.process_time() < end:
        n += 1
    return n


def fan_out(n: int) -> list[Stage]:
    root = Stage(name="root", func=noop, provides=("x",))
    return [root] + [Stage(name=f"s{i}", func=noop, requires=("x",), provides=(f"y{i}",)) for i in range(n)]


def overhead(executor: str, n: int, repeat: int) -> float:
    pipeline = Pipeline(fan_out(n))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        pipeline.run(executor=executor, workers=2)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / (n + 1) * 1e6


def cpu_bound(repeat: int) -> tuple[float, float]:
    stages = [Stage(name=f"burn{i}", func=burn, provides=(f"n{i}",), params={"seconds": 1.0}) for i in range(2)]
    walls: dict[str, list[float]] = {"sequential": [], "process": []}
    for _ in range(repeat):
        for executor in walls:
            start = time.perf_counter()
            Pipeline(stages).run(executor=executor, workers=2)
            walls[executor].append(time.perf_counter() - start)
    return statistics.median(walls["sequential"]), statistics.median(walls["process"])


FANOUT_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np, pandas as pd
    from stagekit import Pipeline, stage

    def branch(frame, i):
        return float(frame.iloc[i, i])      # reads the shared frame, copies nothing

    rows = 1_000_000_000 // (8 * 16)         # 16 float64 columns: about 1 GB
    frame = pd.DataFrame(np.random.default_rng(0).random((rows, 16)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = frame.memory_usage(index=True).sum()
    stages = [stage(branch, name=f"b{i}", requires=["frame"], provides=[f"v{i}"], params={"i": i}) for i in range(8)]
    Pipeline(stages).run({"frame": frame}, executor="thread", workers=8)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(size, before, after)
""")


def fanout_memory() -> tuple[int, int, int]:
    out = subprocess.run([sys.executable, "-c", FANOUT_SCRIPT], capture_output=True, text=True, check=True).stdout
    size, before, after = (int(v) for v in out.split())
    return size, before, after


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer stages and repeats")
    args = parser.parse_args()
    repeat = 3 if args.quick else 5
    print("1. no-op stage overhead, fan-out (median us/stage, 2 workers)")
    for executor, n in (("sequential", 10_000), ("thread", 10_000), ("process", 1_000 if args.quick else 2_000)):
        print(f"   {executor:10} {n:>6} stages  {overhead(executor, n, repeat):9.1f} us/stage", flush=True)
    seq, proc = cpu_bound(1 if args.quick else 3)
    print(f"2. two CPU-bound 1 s branches: sequential {seq:.2f} s, process {proc:.2f} s, ratio {proc / seq:.2f}x")
    size, before, after = fanout_memory()
    print(f"3. 8-way fan-out of a {size / 2**30:.2f} GiB frame (thread): peak RSS {before / 2**30:.2f} GiB before "
          f"the run, {after / 2**30:.2f} GiB after; the run added {(after - before) / size:.1%} of one copy")


if __name__ == "__main__":
    main()
