"""``stagekit snapshot``: create, list, show, verify, restore, delete and gc immutable workspace snapshots.

Errors are raised (``SnapshotError``, ``WorkspaceError``) for ``stagekit.cli.main`` to print; ``verify``
exits 1 and lists every problem when the snapshot does not match.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagekit._text import table
from stagekit.cli.progress import StatusLine

if TYPE_CHECKING:
    from stagekit.snapshots.manifest import Snapshot
    from stagekit.snapshots.store import Progress
    from stagekit.workspace import Workspace

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Add the ``snapshot`` command group to the main parser's subparsers."""
    top = subparsers.add_parser(
        "snapshot", help="immutable snapshots of workspace files",
        description="Immutable, verifiable copies of workspace files (see docs/snapshots.md).")
    sub = top.add_subparsers(dest="snapshot_command", metavar="COMMAND", required=True)

    p = sub.add_parser("create", help="snapshot files and directories of the workspace")
    p.add_argument("name", metavar="NAME")
    p.add_argument("paths", metavar="PATH", nargs="+",
                   help="inside the workspace; relative to the current directory when it is inside the "
                        "workspace, else to the workspace root")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for another snapshot creation or deletion to finish (default: 0)")
    p.add_argument("--rehash", action="store_true", help="re-read every file, ignoring the stat cache")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=_create)

    p = sub.add_parser("list", help="list the snapshots")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=_list)

    p = sub.add_parser("show", help="show a snapshot's files")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print the manifest")
    p.set_defaults(func=_show)

    p = sub.add_parser("verify", help="re-hash a snapshot's stored files (exit 1 on any difference)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--against", metavar="DIR",
                   help="compare the files under DIR instead (a restore, or the workspace root)")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(func=_verify)

    p = sub.add_parser("restore", help="copy a snapshot's files into a new directory")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--to", required=True, metavar="DIR", help="a new or empty directory")
    p.add_argument("--hardlink", action="store_true",
                   help="hard-link the stored files instead of copying: fast but UNSAFE, an in-place write "
                        "to a restored file corrupts the snapshot")
    p.set_defaults(func=_restore)

    p = sub.add_parser("delete", help="delete a snapshot and the stored files only it used")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for another snapshot creation or deletion to finish (default: 0)")
    p.set_defaults(func=_delete)

    p = sub.add_parser("gc", help="remove stored files no snapshot uses, and leftovers of crashed creations")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for another snapshot creation or deletion to finish (default: 0)")
    p.set_defaults(func=_gc)

    for command in sub.choices.values():
        command.set_defaults(func=_named_errors(command.get_default("func")))


# --- handlers ------------------------------------------------------------------------------------------


def _named_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``handler``, with an ``OSError`` that the snapshot code did not word itself (a bug there) raised as a
    ``WorkspaceError`` naming the file, so that it still prints as one line and exits 2, not a traceback."""
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except OSError as exc:
            from stagekit.errors import WorkspaceError
            from stagekit.snapshots.layout import why

            if isinstance(exc, BrokenPipeError):
                raise
            raise WorkspaceError(f"snapshot {args.snapshot_command} failed: {why(exc)}",
                                 path=os.fsdecode(exc.filename) if isinstance(exc.filename, str | bytes)
                                 else None) from exc

    return run


def _workspace(args: argparse.Namespace) -> Workspace:
    from stagekit.workspace import Workspace

    return Workspace.locate(getattr(args, "workspace", None))


def _create(args: argparse.Namespace) -> int:
    ws = _workspace(args)
    cwd = Path.cwd().resolve()
    base = cwd if cwd == ws.root or ws.root in cwd.parents else ws.root
    paths = [os.path.join(base, p) for p in args.paths]
    with _progress(enabled=not args.json) as progress:
        result = ws.create_snapshot(args.name, paths, wait=args.wait, rehash=args.rehash, progress=progress)
    snap = result.snapshot
    if args.json:
        _print_json({**snap.summary(), "files_read": result.files_read, "bytes_read": result.bytes_read,
                     "objects_added": result.objects_added, "bytes_added": result.bytes_added})
        return 0
    print(f"created snapshot {snap.name!r}: {snap.file_count} files, {_size(snap.total_size)} "
          f"from {', '.join(snap.paths)}")
    print(f"  read {result.files_read} changed or new files ({_size(result.bytes_read)}); "
          f"stored {result.objects_added} new contents ({_size(result.bytes_added)})")
    return 0


def _list(args: argparse.Namespace) -> int:
    snaps = _workspace(args).snapshots()
    if args.json:
        _print_json([s.summary() for s in snaps])
        return 0
    if not snaps:
        print("no snapshots (create one with: stagekit snapshot create NAME PATH...)")
        return 0
    rows = [(s.name, s.created, s.file_count, _size(s.total_size), ", ".join(s.paths)) for s in snaps]
    print(table(("NAME", "CREATED", "FILES", "SIZE", "PATHS"), rows))
    return 0


def _show(args: argparse.Namespace) -> int:
    snap = _workspace(args).snapshot(args.name)
    if args.json:
        _print_json(snap.to_json())
        return 0
    print(f"snapshot  {snap.name}\ncreated   {snap.created}\npaths     {', '.join(snap.paths)}\n"
          f"files     {snap.file_count} ({_size(snap.total_size)}), {snap.algorithm}\n")
    print(table(("MODE", "SIZE", "HASH", "PATH"), _entry_rows(snap)))
    return 0


def _entry_rows(snap: Snapshot) -> list[tuple[str, str, str, str]]:
    rows = []
    for e in snap.entries:
        if e.kind == "file":
            rows.append((f"{e.mode:04o}", _size(e.size), e.hash[:12], e.path))
        elif e.kind == "symlink":
            rows.append(("link", "-", "-", f"{e.path} -> {e.target}"))
        else:
            rows.append((f"{e.mode:04o}", "-", "-", e.path + "/"))
    return rows


def _verify(args: argparse.Namespace) -> int:
    ws = _workspace(args)
    with _progress(enabled=not args.json) as progress:
        report = ws.verify_snapshot(args.name, against=args.against, progress=progress)
    if args.json:
        _print_json(report.to_json())
        return 0 if report.ok else 1
    what = f"files under {args.against!r}" if args.against else "stored files"
    if report.ok:
        print(f"ok: snapshot {report.name!r} verified, {report.files} {what} ({_size(report.size)}) match")
        return 0
    print(f"snapshot {report.name!r} does NOT verify: {len(report.problems)} problem(s) in the {what}")
    for problem in report.problems:
        print(f"  {problem}")
    return 1


def _restore(args: argparse.Namespace) -> int:
    ws = _workspace(args)
    if args.hardlink:
        print("warning: --hardlink restores share their content with the snapshot store; a program that "
              "rewrites a restored file in place (pandas.to_parquet does) corrupts the snapshot",
              file=sys.stderr)
    with _progress(enabled=True) as progress:
        result = ws.restore_snapshot(args.name, args.to, hardlink=args.hardlink, progress=progress)
    print(f"restored snapshot {result.name!r} to {str(result.path)!r}: {result.files} files, "
          f"{_size(result.size)} ({result.method}, verified)")
    return 0


def _delete(args: argparse.Namespace) -> int:
    result = _workspace(args).delete_snapshot(args.name, wait=args.wait)
    print(f"deleted snapshot {result.name!r}; removed {result.objects_removed} stored contents no other "
          f"snapshot uses ({_size(result.bytes_freed)} freed)")
    return 0


def _gc(args: argparse.Namespace) -> int:
    removed, freed = _workspace(args).gc(wait=args.wait)
    print(f"removed {removed} stored contents no snapshot uses ({_size(freed)} freed)")
    return 0


# --- output --------------------------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[Progress], None] | None]:
    """A progress callback drawing one status line on stderr, if ``enabled`` and stderr is a terminal."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    line = StatusLine(sys.stderr)

    def show(p: Progress) -> None:
        line.show(f"{p.phase} {p.done}/{p.total} files, {_size(p.done_bytes)} of {_size(p.total_bytes)}",
                  force=p.done == p.total)

    try:
        yield show
    finally:
        line.clear()
