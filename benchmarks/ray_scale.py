"""The Ray backend: its fixed and per-stage costs, and the returns matrix from data larger than memory.

Run: ``python benchmarks/ray_scale.py [--files 30] [--budget-mib 512] [--stages 100]`` (needs stagekit-ray).

1. Overhead. Ray's fixed start-up cost (a run that starts its own local cluster and stops it, against the
   same run in a cluster already up), then the cost per stage of N no-op stages, chained and independent,
   against the sequential executor.
2. Scale. A parquet dataset of long daily rows (date, symbol, open, high, low, close, volume) whose
   in-memory size (as pandas loads it) is several times a memory budget. ``read_returns_matrix`` builds the
   returns matrix from it with Ray Data streaming; pandas (``pd.read_parquet`` of the three needed columns,
   then the same computation) runs on growing subsets until it exceeds the budget. Memory is the peak
   proportional set size (PSS: shared pages counted once) summed over every process of the run (the driver,
   Ray's daemons and workers; pandas' one process), above the same processes at rest before the build: the
   working memory the build itself needs. Both sides are measured in this one run, and the matrices compared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MiB = 2**20
DATES = pd.bdate_range("2010-01-04", periods=2520)  # ten years of business days


# --- memory -----------------------------------------------------------------------------------------


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants (Ray's daemons and workers descend from the driver)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_pss(root: int) -> int:
    return sum(_pss(pid) for pid in _tree(root))


class Peak:
    """Samples the PSS of a process tree in a thread; ``peak`` is the highest sum seen."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.root, self.interval, self.peak = root, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss(self.root))
            self._stop.wait(self.interval)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_pss(self.root))


# --- the dataset ------------------------------------------------------------------------------------


def write_dataset(folder: Path, files: int, symbols_per_file: int, seed: int = 0) -> int:
    """``files`` parquet files of long daily rows, each with its own symbols, ~3% of days missing."""
    rng = np.random.default_rng(seed)
    rows = 0
    for f in range(files):
        shape = (len(DATES), symbols_per_file)
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, shape), axis=0))
        keep = rng.random(shape) > 0.03
        d, s = np.nonzero(keep)
        order = np.lexsort((d, s))  # by symbol, then date, as files usually are
        d, s = d[order], s[order]
        c = close[d, s]
        names = np.array([f"S{f * symbols_per_file + j:05d}" for j in range(symbols_per_file)])
        table = pa.table({
            "date": pa.array(DATES.to_numpy()[d]), "symbol": pa.array(names[s]),
            "open": c * rng.uniform(0.99, 1.01, len(c)), "high": c * 1.02, "low": c * 0.98, "close": c,
            "volume": rng.integers(1_000, 1_000_000, len(c)).astype("float64"),
        })
        pq.write_table(table, folder / f"part-{f:04d}.parquet", row_group_size=256_000)
        rows += len(c)
    return rows


def subset(folder: Path, files: int, where: Path) -> Path:
    """A folder holding the first ``files`` files of the dataset (as links)."""
    where.mkdir()
    for path in sorted(folder.glob("*.parquet"))[:files]:
        (where / path.name).symlink_to(path)
    return where


# --- pandas, in a fresh process ---------------------------------------------------------------------

PANDAS = """
import json, resource, sys, time
sys.path.insert(0, {bench!r})
import pandas as pd, pyarrow
from ray_scale import Peak, tree_pss
from stagekit_ray.data import returns_matrix_pandas
import os
rest = tree_pss(os.getpid())
start = time.perf_counter()
with Peak(os.getpid(), 0.05) as peak:
    rows = pd.read_parquet({path!r}, columns=["date", "symbol", "close"])
    matrix = returns_matrix_pandas(rows)
    del rows
elapsed = time.perf_counter() - start
matrix.to_parquet({out!r}) if {keep!r} else None
print(json.dumps({{"seconds": elapsed, "rest": rest, "peak": peak.peak, "shape": list(matrix.shape),
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""


def run_pandas(path: Path, out: Path | None) -> dict[str, Any]:
    code = PANDAS.format(bench=str(Path(__file__).parent), path=str(path), out=str(out), keep=out is not None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-1:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- Ray ----------------------------------------------------------------------------------------------


def run_ray(path: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    from stagekit_ray.data import read_returns_matrix

    rest = tree_pss(os.getpid())
    start = time.perf_counter()
    with Peak(os.getpid()) as peak:
        matrix = read_returns_matrix(str(path))
    return {"seconds": time.perf_counter() - start, "rest": rest, "peak": peak.peak,
            "shape": list(matrix.shape)}, matrix


# --- overhead -----------------------------------------------------------------------------------------


def noop(**artifacts: Any) -> int:
    return 0


def chain(n: int) -> list[Any]:
    from stagekit import stage

    return [stage(noop, name=f"s{i}", requires=[f"a{i}"], provides=[f"a{i + 1}"]) for i in range(n)]


def fan(n: int) -> list[Any]:
    from stagekit import stage

    return [stage(noop, name=f"s{i}", requires=["a0"], provides=[f"b{i}"]) for i in range(n)]


def timed(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def overhead(stages: int) -> None:
    import ray
    import stagekit_ray.plugin
    from stagekit_ray.cluster import open_session

    from stagekit import Host, Pipeline

    host = Host(plugins=[stagekit_ray.plugin], autoload=False, env={})

    def run(built: list[Any], executor: str) -> Any:
        return Pipeline(built, host=host).run({"a0": 0}, executor=executor)  # the cluster has 2 CPUs

    cold = timed(lambda: run(chain(1), "ray"), repeat=2)  # starts a local cluster, runs, stops it
    assert not ray.is_initialized()  # the executor's shutdown stopped it
    session = open_session(num_cpus=2)
    try:
        run(chain(1), "ray")  # workers started, functions exported
        warm = timed(lambda: run(chain(1), "ray"))
        rows = []
        for label, build in (("chained", chain), ("independent", fan)):
            one = {ex: timed(lambda ex=ex, b=build: run(b(1), ex)) for ex in ("sequential", "ray")}
            many = {ex: timed(lambda ex=ex, b=build: run(b(stages), ex)) for ex in ("sequential", "ray")}
            rows.append((label, {ex: (many[ex] - one[ex]) / (stages - 1) for ex in many}))
    finally:
        session.close()
    print("Ray overhead (local cluster, 2 CPUs)")
    print(f"  fixed: a 1-stage run starting and stopping its own cluster  {cold:8.2f} s")
    print(f"         the same run in a cluster already up                 {warm * 1e3:8.1f} ms")
    print(f"         => start-up + shutdown cost                          {cold - warm:8.2f} s")
    for label, per in rows:
        print(f"  per stage, {stages} {label} no-op stages: ray {per['ray'] * 1e3:7.2f} ms, "
              f"sequential {per['sequential'] * 1e6:7.1f} us")


# --- scale ----------------------------------------------------------------------------------------------


@contextmanager
def scratch() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="skray-bench-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def scale(files: int, symbols_per_file: int, budget: int, object_store: int) -> None:
    from stagekit_ray.cluster import open_session

    with scratch() as root:
        data = root / "data"
        data.mkdir()
        start = time.perf_counter()
        rows = write_dataset(data, files, symbols_per_file)
        wrote = time.perf_counter() - start
        one = pd.read_parquet(next(data.glob("*.parquet")))
        in_memory = one.memory_usage(deep=True).sum() * files
        needed = one[["date", "symbol", "close"]].memory_usage(deep=True).sum() * files
        print(f"\nDataset: {files} files, {rows:,} rows, {sum(p.stat().st_size for p in data.iterdir()) / MiB:,.0f} "
              f"MiB on disk (written in {wrote:.0f} s); in memory as pandas: {in_memory / MiB:,.0f} MiB "
              f"({in_memory / budget:.1f}x the {budget / MiB:.0f} MiB budget), the 3 needed columns "
              f"{needed / MiB:,.0f} MiB; matrix {len(DATES)} x {files * symbols_per_file:,}")

        pandas_runs: list[tuple[int, dict[str, Any]]] = []
        k = 1
        while k <= files:
            result = run_pandas(subset(data, k, root / f"sub{k}"), None)
            pandas_runs.append((k, result))
            if "failed" in result or result["peak"] - result["rest"] > budget:
                break
            k *= 2
        fits = [k for k, r in pandas_runs if "failed" not in r and r["peak"] - r["rest"] <= budget]
        largest = max(fits) if fits else 1

        session = open_session(num_cpus=2, object_store_memory=object_store)
        try:
            from ray.data import DataContext

            DataContext.get_current().enable_progress_bars = False
            run_ray(subset(data, min(files, 4), root / "warm"))  # every worker up and warm before measuring
            ray_small, ray_matrix = run_ray(root / f"sub{largest}")
            pandas_small = run_pandas(root / f"sub{largest}", root / "pandas.parquet")
            pd.testing.assert_frame_equal(ray_matrix, pd.read_parquet(root / "pandas.parquet"))
            del ray_matrix
            ray_full, _ = run_ray(data)
        finally:
            session.close()

    def line(label: str, r: dict[str, Any]) -> str:
        if "failed" in r:
            return f"  {label:<44} failed: {r['failed']}"
        work = r["peak"] - r["rest"]
        flag = "within" if work <= budget else "OVER"
        return (f"  {label:<44} {r['seconds']:7.1f} s   working {work / MiB:7.0f} MiB ({flag} budget)   "
                f"peak total {r['peak'] / MiB:6.0f} MiB (at rest {r['rest'] / MiB:5.0f})")

    print(f"\nReturns matrix, memory budget {budget / MiB:.0f} MiB of working memory "
          f"(Ray object store {object_store / MiB:.0f} MiB)")
    for k, r in pandas_runs:
        print(line(f"pandas, {k} file(s) (~{k * rows // files / 1e6:.1f}M rows)", r))
    print(f"  largest size pandas builds within the budget: {largest} file(s); side by side on it:")
    print(line(f"pandas, {largest} file(s)", pandas_small))
    print(line(f"ray data, {largest} file(s)", ray_small))
    print(f"    ray / pandas time: {ray_small['seconds'] / pandas_small['seconds']:.2f}x  (matrices equal)")
    print(line(f"ray data, all {files} files ({rows / 1e6:.0f}M rows)", ray_full))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--symbols-per-file", type=int, default=400)
    parser.add_argument("--budget-mib", type=int, default=512)
    parser.add_argument("--object-store-mib", type=int, default=256)
    parser.add_argument("--stages", type=int, default=100)
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    if not args.skip_overhead:
        overhead(args.stages)
    scale(args.files, args.symbols_per_file, args.budget_mib * MiB, args.object_store_mib * MiB)


if __name__ == "__main__":
    main()
