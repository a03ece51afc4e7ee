"""``stagekit runs``: the runs recorded in the workspace's run database, and how each stage went."""

from __future__ import annotations

import argparse
import datetime
import json
from typing import Any

from stagekit._text import table

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    top = subparsers.add_parser("runs", help="the runs recorded in the workspace",
                                description="Runs recorded in the workspace's run database (.stagekit/runs.sqlite).")
    sub = top.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    p = sub.add_parser("list", help="the latest runs, newest first")
    p.add_argument("--limit", type=int, default=20, help="how many (default: 20)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=_list)
    p = sub.add_parser("show", help="one run and how each of its stages went, and why each ran")
    p.add_argument("run", metavar="RUN", nargs="?", default="latest", help="a run id, a unique prefix, or latest")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_show)


def _database(args: argparse.Namespace) -> Any:
    from stagekit.store.rundb import RunDatabase

    return RunDatabase.in_workspace(getattr(args, "workspace", None))


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds")


def _seconds(d: float | None) -> str:
    return "-" if d is None else f"{d:.2f} s"


def _list(args: argparse.Namespace) -> int:
    runs = _database(args).runs(args.limit)
    if args.json:
        print(json.dumps([_run_json(r) for r in runs], indent=2))
        return 0
    if not runs:
        print("no runs recorded in this workspace yet (stagekit run PIPELINE records them)")
        return 0
    rows = [(r.run_id, r.pipeline, r.status, _when(r.started), _seconds(r.duration), r.executor or "-",
             r.snapshot or "-") for r in runs]
    print(table(("RUN", "PIPELINE", "STATUS", "STARTED", "TIME", "EXECUTOR", "SNAPSHOT"), rows, rule=True))
    return 0


def _show(args: argparse.Namespace) -> int:
    db = _database(args)
    run = db.run(args.run)
    stages = db.stage_runs(run.run_id)
    if args.json:
        print(json.dumps({**_run_json(run), "stage_runs": [
            {"stage": s.stage, "status": s.status, "duration": s.duration, "plugin": s.plugin, "error": s.error,
             "params": dict(s.params), "fingerprint": s.fingerprint, "reason": s.reason, "saved": s.saved}
            for s in stages]}, indent=2))
        return 0
    print(f"run       {run.run_id}\npipeline  {run.pipeline}\nstatus    {run.status}\n"
          f"started   {_when(run.started)}\ntime      {_seconds(run.duration)}\n"
          f"executor  {run.executor or '-'}\nsnapshot  {run.snapshot or '-'}\n")
    rows = [(s.stage, s.plugin or "-", s.status, "-" if s.status == "cached" else _seconds(s.duration),
             _seconds(s.saved) if s.status == "cached" else "-", s.reason or "-", s.error or "") for s in stages]
    print(table(("STAGE", "PLUGIN", "STATUS", "TIME", "SAVED", "REASON", "ERROR"), rows, rule=True))
    print(f"\n{_counts(stages)}")
    return 0


def _counts(stages: list[Any]) -> str:
    """"12 stages: 3 ran, 9 cached (saved 41.20 s)", and how many failed or never ran, if any did."""
    by: dict[str, int] = {}
    for s in stages:
        by[s.status] = by.get(s.status, 0) + 1
    parts = [f"{by.pop('ok', 0)} ran"]
    if "cached" in by:
        saved = sum(s.saved for s in stages if s.status == "cached")
        parts.append(f"{by.pop('cached')} cached (saved {_seconds(saved)})")
    parts += [f"{n} {status}" for status, n in by.items()]
    return f"{len(stages)} stage{'s' if len(stages) != 1 else ''}: {', '.join(parts)}"


def _run_json(r: Any) -> dict[str, Any]:
    return {"run_id": r.run_id, "pipeline": r.pipeline, "status": r.status, "started": r.started,
            "ended": r.ended, "executor": r.executor, "snapshot": r.snapshot, "stages": r.stages}
