"""The DataFrame codec beside pandas and pyarrow on one large frame: storing, reusing and fingerprinting.

Targets (issue 14): reusing a stored frame at most 1.3x ``pyarrow.parquet.read_table(...).to_pandas()`` of the
same file; storing it at most 1.3x ``DataFrame.to_parquet``; fingerprinting it at most 1.2x
``pandas.util.hash_pandas_object`` of the same frame. Each pair is timed side by side in one process, in
alternating order, and the medians compared.

The frame mixes what pipelines hold: float columns (one with NaN), int columns, a time-zoned datetime, a
categorical and a string column, sized by ``memory_usage(deep=True)``. Storing is timed without fsync, as
``to_parquet`` does none (the run store makes many writes durable with one ``syncfs``); the atomic write with
fsync is printed beside it for reference. Two more rows time what a run really does with the frame, through
the run store (``stagekit.store.artifacts.ArtifactStore``): ``put`` fingerprints the frame, writes it and hashes
the written object (against ``to_parquet`` plus ``hash_pandas_object``, the two things it must do), and
``load`` reads it back while hashing its bytes to verify them (against ``read_table().to_pandas()``)::

    python benchmarks/store_codecs.py              # a 1 GiB frame, 5 rounds (about 2 minutes, 6 GiB of memory)
    python benchmarks/store_codecs.py --gib 0.25 --rounds 5
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

TARGETS = {"store": 1.3, "reuse": 1.3, "fingerprint": 1.2, "run store: put": 1.3, "run store: load": 1.3}


def make_frame(gib: float) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(14)
    per_row = pd.DataFrame(_columns(rng, 100_000)).memory_usage(deep=True).sum() / 100_000
    return pd.DataFrame(_columns(rng, int(gib * (1 << 30) / per_row)))


def _columns(rng: Any, rows: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    cols: dict[str, Any] = {f"f{i}": rng.standard_normal(rows) for i in range(8)}
    cols["f0"][rng.random(rows) < 0.05] = np.nan
    cols.update({f"i{i}": rng.integers(0, 1 << 40, rows) for i in range(4)})
    cols["when"] = pd.to_datetime(rng.integers(1.6e9, 1.7e9, rows), unit="s", utc=True).tz_convert("Europe/Paris")
    cols["sector"] = pd.Categorical.from_codes(rng.integers(0, 11, rows), pd.Index([f"sector-{i}" for i in range(11)]))
    cols["ticker"] = pd.array(np.char.add("T", rng.integers(0, 5000, rows).astype(str)), dtype="str")
    return cols


def timed(fn: Callable[[], Any], written: str | None = None) -> float:
    """Seconds ``fn`` takes; the file it wrote (if any) is removed after, untimed, so each write makes a new
    file, as the store's writes do."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    del result
    if written is not None:
        os.unlink(written)
    return elapsed


def _spread(times: list[float]) -> str:
    return f"({min(times):.2f}-{max(times):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="the frame's size in memory (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds; medians are compared (default 5)")
    parser.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    args = parser.parse_args()

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pandas.util import hash_pandas_object

    from stagekit.store.artifacts import ArtifactStore
    from stagekit.store.builtin_codecs import builtin_codec_table

    table = builtin_codec_table()
    frame = make_frame(args.gib)
    size = frame.memory_usage(deep=True).sum() / (1 << 30)
    print(f"frame: {len(frame):,} rows x {frame.shape[1]} columns, {size:.2f} GiB in memory "
          f"(pandas {pd.__version__}, pyarrow {pa.__version__}); {args.rounds} rounds, medians")

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        stored, base, new = (os.path.join(tmp, name) for name in ("stored.parquet", "base.parquet", "new.parquet"))
        codec = table.write(frame, stored, fsync=False)
        kept = ArtifactStore(tmp, table).put(frame)  # the run store's copy, read back by "load"

        def put_fresh() -> Any:  # a new store each time (no memo), its object removed after: each put writes
            ours = ArtifactStore(os.path.join(tmp, "put"), table)  # not where `kept` is: same bytes, same object
            done = ours.put(frame)
            os.unlink(ours.path(done.object))
            return done

        pairs: dict[str, tuple[str, Callable[[], Any], str, Callable[[], Any]]] = {
            "store": ("DataFrame.to_parquet", lambda: frame.to_parquet(base),
                      "CodecTable.write (atomic)", lambda: table.write(frame, new, fsync=False)),
            "reuse": ("pq.read_table(f).to_pandas()", lambda: pq.read_table(stored).to_pandas(),
                      "CodecTable.read", lambda: table.read(stored, codec)),
            "fingerprint": ("hash_pandas_object", lambda: hash_pandas_object(frame),
                            "CodecTable.fingerprint", lambda: table.fingerprint(frame)),
            "run store: put": ("to_parquet + hash_pandas_object",
                               lambda: (frame.to_parquet(base), hash_pandas_object(frame)),
                               "ArtifactStore.put", put_fresh),
            "run store: load": ("pq.read_table(f).to_pandas()", lambda: pq.read_table(stored).to_pandas(),
                                "ArtifactStore.load (verified)", lambda: ArtifactStore(tmp, table).load(kept)),
        }
        times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in pairs}
        synced_times: list[float] = []
        for r in range(args.rounds):
            for key, (_, baseline, _, candidate) in pairs.items():
                written = {"store": (base, new), "run store: put": (base, None)}.get(key, (None, None))
                runs = [(0, baseline, written[0]), (1, candidate, written[1])]
                for side, fn, path in runs if r % 2 == 0 else runs[::-1]:  # who goes first alternates
                    times[key][side].append(timed(fn, path))
            synced_times.append(timed(lambda: table.write(frame, new, fsync=True), new))
        file_mib = os.path.getsize(stored) / (1 << 20)

    print(f"parquet file: {file_mib:,.0f} MiB\n")
    print(f"{'':16} {'baseline':31} {'median s':>8} {'(min-max)':>11}   {'stagekit':29} {'median s':>8} "
          f"{'(min-max)':>11}  {'ratio':>6}  {'target':>6}")
    for key, (base_name, _, our_name, _) in pairs.items():
        b, o = (statistics.median(t) for t in times[key])
        ratio = o / b
        verdict = "MET" if ratio <= TARGETS[key] else "NOT MET"
        print(f"{key:16} {base_name:31} {b:8.2f} {_spread(times[key][0]):>11}   {our_name:29} {o:8.2f} "
              f"{_spread(times[key][1]):>11}  {ratio:5.2f}x  {TARGETS[key]:5.1f}x  {verdict}")
    print(f"\nfor reference: CodecTable.write with fsync (durable on return): {statistics.median(synced_times):.2f} s")


if __name__ == "__main__":
    main()
