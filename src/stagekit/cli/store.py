"""``stagekit store gc``: remove the run store's old runs and the stored objects nothing uses any more.

An error prints as one line (``stagekit: error: ...``) and exits 1; ``stagekit --traceback`` shows the whole
story.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Any

from stagekit.cli.snapshot import _size  # one way to print a size in the CLI

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Add the ``store`` command group to the main parser's subparsers."""
    top = subparsers.add_parser(
        "store", help="the run store: stored artifacts and recorded runs",
        description="The workspace's run store: artifacts stored in .stagekit/objects (shared with snapshots) "
                    "and the runs recorded in .stagekit/runs.sqlite (see docs/store.md).")
    sub = top.add_subparsers(dest="store_command", metavar="COMMAND", required=True)

    p = sub.add_parser("gc", help="remove stored objects no snapshot and no kept run uses (and, with "
                                  "--keep-runs, the older runs)")
    p.add_argument("--keep-runs", type=_count, default=None, metavar="N",
                   help="first delete the runs before the last N (running ones stay); default: keep every run")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for a snapshot creation, deletion or gc to finish (default: 0)")
    p.add_argument("--workspace", metavar="DIR", default=argparse.SUPPRESS,
                   help="the workspace (default: $STAGEKIT_WORKSPACE or .)")
    p.set_defaults(func=_gc)


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of runs, 0 or more, not {text!r}")
    return n


def _gc(args: argparse.Namespace) -> int:
    from stagekit.errors import StagekitError
    from stagekit.workspace import Workspace

    try:
        result = Workspace.locate(getattr(args, "workspace", None)).store_gc(keep_runs=args.keep_runs,
                                                                             wait=args.wait)
    except StagekitError as exc:
        if getattr(args, "traceback", False):
            traceback.print_exception(exc, file=sys.stderr)
        print(f"stagekit: error: {exc}", file=sys.stderr)
        return 1
    runs = f"{result.runs_deleted} run{'' if result.runs_deleted == 1 else 's'}, "
    objects = f"{result.objects_removed} object{'' if result.objects_removed == 1 else 's'}"
    print(f"removed {runs}{objects}, {_size(result.bytes_freed)} freed")
    return 0
