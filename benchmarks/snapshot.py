"""Snapshot speed against plain baselines, side by side in one run; prints medians over --repeats.

    /work/venv/bin/python benchmarks/snapshot.py [--repeats 3] [--files 10000] [--big-mib 1024] [--dir DIR]

Two trees: --files files of 4 KiB, and --big-mib MiB in 16 files. Each repeat, for each tree, times in this
order: ``cp -r`` of the tree, ``cp -r`` followed by ``sync`` (a snapshot is durable when it returns, a plain
``cp -r`` is not; for reference), a first snapshot into an empty store, a second snapshot of the unchanged tree,
``cp -al``, ``verify``, a plain Python loop that opens, reads and sha256-hashes the same object files
(``with open(p, "rb") as f: sha256(f.read())``), and raw sha256 of the same bytes already in memory. Every
timed step starts after an untimed ``sync``; the page cache is warm throughout, for cp and stagekit alike.
Nothing is deleted until the end (copies and stores of earlier repeats are moved aside): ext4 skips
recently freed inodes when it allocates new ones, which made creating files just after deleting thousands
several times slower, for cp and stagekit alike, and the timings a lottery.

The targets (docs/snapshots.md): verify of the 4 KiB files at >= 50% of the plain loop's throughput; verify
of the big files at >= 80% of raw sha256; a first snapshot of the 4 KiB files no slower than ``cp -r``; a
second one within 2x ``cp -al``. Use a directory on the filesystem you care about (default: the system temp
dir; not /dev/shm).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from stagekit.workspace import Workspace

MIB = 1 << 20
STEPS = ("cp -r", "cp -r; sync", "first snapshot", "second snapshot", "cp -al", "verify", "plain loop", "raw sha256")


def timed(fn: Callable[..., object], *args: object) -> float:
    os.sync()
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def make_small(root: Path, files: int, size: int) -> None:
    blob = os.urandom(files * size)
    for i in range(files):
        d = root / f"d{i // 100:03}"
        if i % 100 == 0:
            d.mkdir(parents=True)
        (d / f"f{i:05}.bin").write_bytes(blob[i * size:(i + 1) * size])


def make_big(root: Path, files: int, total_mib: int) -> None:
    root.mkdir(parents=True)
    for i in range(files):
        with open(root / f"part{i:02}.bin", "wb") as f:
            for _ in range(max(1, total_mib // files // 16)):
                f.write(os.urandom(16 * MIB))


def plain_loop(paths: list[str]) -> None:
    for path in paths:
        with open(path, "rb") as f:
            hashlib.sha256(f.read()).hexdigest()


def raw_sha256_seconds(paths: list[str]) -> float:
    """sha256 of every file's bytes, already in memory (one file in memory at a time): the ceiling for verify."""
    total = 0.0
    for path in paths:
        with open(path, "rb") as f:
            blob = f.read()
        start = time.perf_counter()
        hashlib.sha256(blob).hexdigest()
        total += time.perf_counter() - start
    return total


def cp(*args: str) -> None:
    subprocess.run(["cp", *args], check=True)


def cp_sync(*args: str) -> None:
    cp(*args)
    os.sync()


def bench_tree(ws: Workspace, rel: str, repeats: int, trash: Path) -> dict[str, float]:
    """Medians of each step over ``repeats``; what each repeat made is moved into ``trash``."""
    tree = str(ws.root / rel)
    t: dict[str, list[float]] = {k: [] for k in STEPS}
    for r in range(repeats):
        t["cp -r"].append(timed(cp, "-r", tree, str(trash / f"{rel}-cp-r-{r}")))
        t["cp -r; sync"].append(timed(cp_sync, "-r", tree, str(trash / f"{rel}-cp-r-sync-{r}")))
        if ws.state_dir.exists():
            ws.state_dir.rename(trash / f"{rel}-state-{r}")
        time.sleep(0.3)  # let the tree leave the stat cache's "modified too recently" window
        t["first snapshot"].append(timed(ws.create_snapshot, f"first{r}", [rel]))
        os.sync()
        start = time.perf_counter()
        second = ws.create_snapshot(f"second{r}", [rel])
        t["second snapshot"].append(time.perf_counter() - start)
        assert second.files_read == 0, "the second snapshot re-read files"
        t["cp -al"].append(timed(cp, "-al", tree, str(trash / f"{rel}-cp-al-{r}")))
        report = ws.verify_snapshot(f"second{r}")
        assert report.ok, report.problems
        t["verify"].append(timed(ws.verify_snapshot, f"second{r}"))
        objects = [str(ws.objects_dir / e.hash[:2] / e.hash) for e in second.snapshot.files]
        t["plain loop"].append(timed(plain_loop, objects))
        t["raw sha256"].append(raw_sha256_seconds(objects))
    return {k: statistics.median(v) for k, v in t.items()}


def show(title: str, nbytes: int, med: dict[str, float]) -> None:
    print(f"\n{title}: {nbytes / MIB:.0f} MiB")
    for name, secs in med.items():
        print(f"  {name:<16} {secs * 1000:9.1f} ms  {nbytes / MIB / secs:8.0f} MiB/s")


def target(what: str, ratio: float, limit: float, higher_is_better: bool) -> None:
    met = ratio >= limit if higher_is_better else ratio <= limit
    print(f"  {what:<58} {ratio:6.2f}  (target {'>=' if higher_is_better else '<='} {limit:.2f})  "
          f"{'MET' if met else 'MISSED'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000, help="files of 4 KiB in the small tree")
    parser.add_argument("--big-mib", type=int, default=1024, help="MiB in the 16 files of the big tree")
    parser.add_argument("--dir", default=None, help="where to build the trees (default: system temp dir)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="stagekit-bench-", dir=args.dir))
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, in {base}; medians of {args.repeats}")
        (base / "ws").mkdir()
        (base / "trash").mkdir()
        ws = Workspace(base / "ws")
        make_small(ws.root / "small", args.files, 4096)
        make_big(ws.root / "big", 16, args.big_mib)
        small = bench_tree(ws, "small", args.repeats, base / "trash")
        show(f"{args.files} files of 4 KiB", args.files * 4096, small)
        big = bench_tree(ws, "big", args.repeats, base / "trash")
        show(f"16 files, {args.big_mib} MiB", args.big_mib * MIB, big)
        print("\ntargets (throughput ratios: higher is better; time ratios: lower is better)")
        target(f"verify {args.files} x 4 KiB / plain open-read-sha256 loop", small["plain loop"] / small["verify"],
               0.5, True)
        target(f"verify 16 files, {args.big_mib} MiB / raw sha256", big["raw sha256"] / big["verify"], 0.8, True)
        target(f"first snapshot {args.files} x 4 KiB, time / cp -r", small["first snapshot"] / small["cp -r"],
               1.0, False)
        target(f"second snapshot {args.files} x 4 KiB, time / cp -al", small["second snapshot"] / small["cp -al"],
               2.0, False)
        print(f"  (first snapshot / cp -r; sync: {small['first snapshot'] / small['cp -r; sync']:.2f} for "
              f"{args.files} x 4 KiB, {big['first snapshot'] / big['cp -r; sync']:.2f} for 16 files; 16 files, "
              f"{args.big_mib} MiB: first snapshot / cp -r {big['first snapshot'] / big['cp -r']:.2f}, "
              f"second / cp -al {big['second snapshot'] / big['cp -al']:.2f})")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
