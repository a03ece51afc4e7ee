"""Snapshot speed against cp, side by side in one run; prints medians over --repeats.

    /work/venv/bin/python benchmarks/snapshot.py [--repeats 3] [--files 10000] [--big-mib 1024] [--sizes-mib 40]
        [--dir DIR]

For each tree (10,000 files of 4 KiB; 1 GiB in 16 files), each repeat times, in this order:
``cp -r``, ``cp -r`` followed by ``sync`` (a snapshot is durable when it returns, plain ``cp -r`` is not),
a first snapshot into an empty store, a second snapshot of the unchanged tree, ``cp -al``, ``verify`` with the
default workers (threads, or forked processes for packed contents) and with one, reading the store's files
without hashing, and raw sha256 over the same bytes already in memory (one thread, one update per file, as
verify does). Every timed step starts after an untimed ``sync``; the page cache is
warm throughout (the trees fit in memory), for cp and stagekit alike.

Then, for files of 4 KiB to 1 MiB (--sizes-mib of each), verify against raw sha256 of the same files: small
files are bound by per-file Python work, bigger ones by hashing.

Use a directory on the filesystem you care about (default: the system temp dir; not /dev/shm).
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

from stagekit import _store
from stagekit.snapshots.workspace import Workspace

MIB = 1 << 20


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
            for _ in range(total_mib // files // 16):
                f.write(os.urandom(16 * MIB))


def raw_hash_seconds(tree: Path) -> float:
    """sha256 of every file's bytes, already in memory: the ceiling for verify."""
    blobs = [p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()]
    start = time.perf_counter()
    for blob in blobs:
        hashlib.sha256(blob).hexdigest()
    return time.perf_counter() - start


def read_seconds(paths: list[str]) -> float:
    """open, fstat, read, close of every file of the store (objects and packs), without hashing."""
    start = time.perf_counter()
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        size = os.fstat(fd).st_size
        while os.read(fd, min(size + 1, MIB)):
            pass
        os.close(fd)
    return time.perf_counter() - start


def cp(*args: str) -> None:
    subprocess.run(["cp", *args], check=True)


def cp_sync(*args: str) -> None:
    cp(*args)
    os.sync()


def verify_one_worker(ws: Workspace, name: str) -> None:
    workers, _store._WORKERS = _store._WORKERS, 1
    try:
        ws.verify_snapshot(name)
    finally:
        _store._WORKERS = workers


def bench_tree(ws: Workspace, rel: str, repeats: int) -> dict[str, list[float]]:
    tree, copy = str(ws.root / rel), str(ws.root.parent / "copy")
    t: dict[str, list[float]] = {k: [] for k in (
        "cp -r", "cp -r; sync", "first snapshot", "second snapshot", "cp -al", "verify (default)",
        "verify (1 worker)", "read store, no hash", "raw sha256")}
    for r in range(repeats):
        t["cp -r"].append(timed(cp, "-r", tree, copy))
        shutil.rmtree(copy)
        t["cp -r; sync"].append(timed(cp_sync, "-r", tree, copy))
        shutil.rmtree(copy)
        shutil.rmtree(ws.state_dir, ignore_errors=True)
        time.sleep(0.3)  # let the tree leave the stat cache's "modified too recently" window
        t["first snapshot"].append(timed(ws.create_snapshot, f"first{r}", [rel]))
        os.sync()
        start = time.perf_counter()
        second = ws.create_snapshot(f"second{r}", [rel])
        t["second snapshot"].append(time.perf_counter() - start)
        assert second.files_read == 0, "the second snapshot re-read files"
        t["cp -al"].append(timed(cp, "-al", tree, copy))
        shutil.rmtree(copy)
        t["verify (default)"].append(timed(ws.verify_snapshot, f"second{r}"))
        t["verify (1 worker)"].append(timed(verify_one_worker, ws, f"second{r}"))
        t["read store, no hash"].append(read_seconds([str(p) for d in (ws.objects_dir, ws.packs_dir)
                                                      for p in d.rglob("*") if p.is_file()]))
        t["raw sha256"].append(raw_hash_seconds(Path(tree)))
    return t


def bench_verify_sizes(base: Path, total_mib: int, repeats: int) -> None:
    """Verify against raw sha256 for files of 4 KiB to 1 MiB, ``total_mib`` of each: where verify is
    bound by per-file work and where by hashing."""
    print(f"\nverify by file size, {total_mib} MiB of each, median of {repeats}")
    print(f"  {'file size':>9} {'files':>6} {'verify':>9} {'1 worker':>9} {'raw sha256':>11} "
          f"{'verify/raw':>11} {'1 worker/raw':>13}")
    for kib in (4, 16, 63, 64, 256, 1024):
        files = total_mib * 1024 // kib
        root = base / f"sizes-{kib}"
        root.mkdir()
        ws = Workspace(root)
        make_small(ws.root / "tree", files, kib * 1024)
        time.sleep(0.3)
        ws.create_snapshot("s", ["tree"])
        t: dict[str, list[float]] = {"verify": [], "1 worker": [], "raw": []}
        for _ in range(repeats):
            t["verify"].append(timed(ws.verify_snapshot, "s"))
            t["1 worker"].append(timed(verify_one_worker, ws, "s"))
            t["raw"].append(raw_hash_seconds(ws.root / "tree"))
        med = {k: statistics.median(v) for k, v in t.items()}
        print(f"  {kib:>6} KiB {files:>6} {med['verify'] * 1000:>7.1f} ms {med['1 worker'] * 1000:>6.1f} ms "
              f"{med['raw'] * 1000:>8.1f} ms {med['raw'] / med['verify']:>11.0%} {med['raw'] / med['1 worker']:>13.0%}")
        shutil.rmtree(root)


def report(title: str, nbytes: int, t: dict[str, list[float]]) -> None:
    med = {k: statistics.median(v) for k, v in t.items()}
    print(f"\n{title}: {nbytes / MIB:.0f} MiB, median of {len(next(iter(t.values())))}")
    compare = {"first snapshot": "cp -r", "second snapshot": "cp -al"}
    for name, secs in med.items():
        line = f"  {name:<22} {secs:8.3f} s  {nbytes / MIB / secs:8.0f} MiB/s"
        if name in compare:
            line += f"   {secs / med[compare[name]]:5.2f}x {compare[name]}"
            if name == "first snapshot":
                line += f", {secs / med['cp -r; sync']:5.2f}x cp -r; sync"
        if name.startswith("verify"):
            line += f"   {med['raw sha256'] / secs:6.0%} of raw sha256"
            line += f", {(med['raw sha256'] + med['read store, no hash']) / secs:4.0%} of read + hash"
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--sizes-mib", type=int, default=40, help="MiB per file size in the verify sweep")
    parser.add_argument("--dir", default=None, help="where to build the trees (default: system temp dir)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="stagekit-bench-", dir=args.dir))
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, in {base} "
              f"(device {os.stat(base).st_dev}; this script's: {os.stat(__file__).st_dev})")
        (base / "ws").mkdir()
        ws = Workspace(base / "ws")
        make_small(ws.root / "small", args.files, 4096)
        make_big(ws.root / "big", 16, args.big_mib)
        report(f"{args.files} files of 4 KiB", args.files * 4096, bench_tree(ws, "small", args.repeats))
        report(f"16 files, {args.big_mib} MiB", args.big_mib * MIB, bench_tree(ws, "big", args.repeats))
        bench_verify_sizes(base, args.sizes_mib, args.repeats)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
