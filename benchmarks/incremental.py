"""The momentum demo run again: whole ``stagekit run`` processes (startup included), first run vs run again.

Targets (issue 14): the demo run again with nothing changed takes at most 15% of its first run's wall time;
with only ``finalize_selection.top_n`` changed, only that stage and those downstream of it run.

``examples/momentum/pipeline.toml`` is copied as it is into a temporary folder and run from there (its
``[pipeline] workspace`` and its ``workspace`` artifact are relative, so all state lands in the temporary
folder and the repository's example is untouched). Each repeat starts from an empty folder and times, as
whole processes (``stagekit run FILE --no-progress --json``):

- first: the first run (a fresh workspace; the synthetic raw data is generated inside this run, as in the
  demo's own first run: ``generate_raw_prices`` is shown apart);
- again: the same run at once with nothing changed, then again (steady: the third run);
- top_n=30: with ``--param finalize_selection.top_n=30`` (a value the workspace has not seen), then back to
  20 (which the store holds from the first run);
- first, data kept: ``.stagekit`` deleted but the generated data kept (a first run without the data
  generation), then that run again;
- for reference, ``stagekit graph FILE --format json``: a process that starts, loads the plugins and the
  pipeline file and runs nothing, the floor of any ``stagekit run``.

The stages each run actually ran (status other than "cached", from ``--json``) are printed, and those of the
top_n=30 run compared with finalize_selection and its downstream, computed from ``stagekit graph --format
json``. Medians of ``--repeats`` (default 3)::

    python benchmarks/incremental.py               # the demo's size: 500 symbols x 10 years (about 2 minutes)
    python benchmarks/incremental.py --small       # 60 symbols x 6 years
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
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

DEMO = Path(__file__).resolve().parent.parent / "examples" / "momentum" / "pipeline.toml"
SMALL = ["--param", "generate_raw_prices.symbols=60", "--param", "generate_raw_prices.years=6"]
TARGET = 0.15
CHANGED = "finalize_selection"

# (key, label, extra arguments) in the order they run within one repeat
RUNS: list[tuple[str, str, list[str]]] = [
    ("first", "first run (fresh workspace)", []),
    ("again", "again, nothing changed", []),
    ("steady", "again (third run)", []),
    ("top_n_30", "top_n=30", ["--param", f"{CHANGED}.top_n=30"]),
    ("top_n_20", "back to top_n=20", ["--param", f"{CHANGED}.top_n=20"]),
    ("first_data", "first run, data kept", []),
    ("again_data", "  then again", []),
]


def stagekit_command() -> list[str]:
    """``python -m stagekit`` if the package can be run so, else the ``stagekit`` script of this Python's
    environment (stagekit has no ``__main__`` today)."""
    probe = subprocess.run([sys.executable, "-m", "stagekit", "--help"], capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "stagekit"]
    script = Path(sys.executable).parent / "stagekit"
    found = str(script) if script.exists() else shutil.which("stagekit")
    if found is None:
        sys.exit("no stagekit command: neither `python -m stagekit` nor a `stagekit` script")
    return [found]


def run(cmd: Sequence[str], cwd: Path) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one whole process, and its ``--json`` summary."""
    start = time.perf_counter()
    done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}{done.stdout}")
    return elapsed, json.loads(done.stdout)


def ran(summary: dict[str, Any]) -> list[str]:
    return [s["name"] for s in summary["stages"] if s["status"] != "cached"]


def downstream(graph: dict[str, Any], root: str) -> set[str]:
    """``root`` and every stage that depends on it (through what it provides or ``after``), transitively."""
    stages = graph["stages"]
    creators = {a: s["name"] for s in stages for a in s["provides"]}
    upstream = {s["name"]: set(s.get("after", [])) | {creators[a] for a in s["requires"] if a in creators}
                for s in stages}
    found = {root}
    grew = True
    while grew:
        grew = False
        for name, ups in upstream.items():
            if name not in found and ups & found:
                found.add(name)
                grew = True
    return found


def _names(names: Iterable[str]) -> str:
    names = list(names)
    return ", ".join(names) if names else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats; medians are reported (default 3)")
    parser.add_argument("--small", action="store_true", help="60 symbols x 6 years instead of the demo's size")
    parser.add_argument("--dir", default=None, help="where the temporary folder goes (default: the system's)")
    args = parser.parse_args()

    base = stagekit_command()
    size = SMALL if args.small else []
    times: dict[str, list[float]] = {key: [] for key, _, _ in RUNS}
    stages_ran: dict[str, list[list[str]]] = {key: [] for key, _, _ in RUNS}
    generate: list[float] = []
    floor: list[float] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        pipeline = folder / "pipeline.toml"
        shutil.copyfile(DEMO, pipeline)
        workspace = folder / "workspace"  # the file's [pipeline] workspace and its `workspace` artifact
        graph = json.loads(subprocess.run([*base, "graph", str(pipeline), "--format", "json"], cwd=folder,
                                          capture_output=True, text=True, check=True).stdout)
        expected = downstream(graph, CHANGED)
        cmd = [*base, "run", str(pipeline), "--no-progress", "--json", *size]
        print(f"{' '.join(cmd)}\n(cwd: a temporary copy of {DEMO.relative_to(DEMO.parents[2])}; "
              f"{args.repeats} repeats, medians; python {sys.version.split()[0]}, {os.cpu_count()} cores)",
              flush=True)
        for r in range(args.repeats):
            shutil.rmtree(workspace, ignore_errors=True)
            (folder / "report.html").unlink(missing_ok=True)
            start = time.perf_counter()  # the floor: start, load the plugins and the file, no run
            subprocess.run([*base, "graph", str(pipeline), "--format", "json"], cwd=folder, capture_output=True,
                           check=True)
            floor.append(time.perf_counter() - start)
            for key, _, extra in RUNS:
                if key == "first_data":
                    shutil.rmtree(workspace / ".stagekit")  # the run store only: the generated data stays
                elapsed, summary = run([*cmd, *extra], folder)
                times[key].append(elapsed)
                stages_ran[key].append(ran(summary))
                if key == "first":
                    generate.append(next(s["duration"] for s in summary["stages"]
                                         if s["name"] == "generate_raw_prices"))
            assert (workspace / ".stagekit").is_dir(), "the run store must be in the temporary folder"
            print(f"  repeat {r + 1}: " + "  ".join(f"{key} {times[key][-1]:.2f}s" for key, _, _ in RUNS),
                  flush=True)

    med = {key: statistics.median(t) for key, t in times.items()}
    first = med["first"]
    print(f"\n{'run':30} {'median s':>8} {'(min-max)':>13} {'/ first':>8}  stages that ran (not cached), "
          "last repeat")
    for key, label, _ in RUNS:
        spread = f"({min(times[key]):.2f}-{max(times[key]):.2f})"
        names = stages_ran[key][-1]
        shown = f"all {len(names)}" if key in ("first", "first_data") and len(names) > 4 else _names(names)
        print(f"{label:30} {med[key]:8.2f} {spread:>13} {med[key] / first:7.0%}  {shown}")
    low = statistics.median(floor)
    print(f"{'for reference: stagekit graph':30} {low:8.2f} {f'({min(floor):.2f}-{max(floor):.2f})':>13} "
          f"{low / first:7.0%}  (a process that starts, loads the plugins and the file, runs nothing)")
    gen = statistics.median(generate)
    print(f"\nthe first run includes generate_raw_prices (the synthetic data): {gen:.2f} s median of its "
          f"{first:.2f} s ({gen / first:.0%})")
    for key, against, label in (("again", "first", "again / first"), ("steady", "first", "third run / first"),
                                ("again_data", "first_data", "again / first with data kept")):
        ratio = med[key] / med[against]
        print(f"{label:30} {ratio:6.1%}  target <= {TARGET:.0%}  {'MET' if ratio <= TARGET else 'NOT MET'}")
    again_ran = {name for names in stages_ran["again"] for name in names}
    if again_ran:
        print(f"the run again right after a first run still ran: {_names(sorted(again_ran))}")
    print(f"\ntop_n=30 ran:      {_names(stages_ran['top_n_30'][-1])}")
    print(f"downstream of {CHANGED} (from stagekit graph): {_names(sorted(expected))}")
    exact = all(set(names) == expected for names in stages_ran["top_n_30"])
    print(f"only downstream of {CHANGED} ran: {'yes' if exact else 'no'} (in every repeat)")
    if not exact:
        for names in stages_ran["top_n_30"]:
            print(f"  extra: {_names(sorted(set(names) - expected))}; missing: {_names(sorted(expected - set(names)))}")
    print(f"back to top_n=20 ran: {_names(stages_ran['top_n_20'][-1])} (the store holds top_n=20 from the first run)")


if __name__ == "__main__":
    main()
