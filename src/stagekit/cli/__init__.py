"""The ``stagekit`` command. Errors print as one or two lines; ``--traceback`` shows the whole story."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from stagekit.cli import commands, runs, snapshot, store

    parser = argparse.ArgumentParser(
        prog="stagekit", description="Pluggable, parallel, validated data pipelines.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--workspace", metavar="DIR", help="the workspace (default: $STAGEKIT_WORKSPACE or .)")
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--strict-plugins", action="store_true",
                        help="a plugin that fails to load is fatal (also STAGEKIT_STRICT_PLUGINS=1)")
    parser.add_argument("--disable", metavar="NAME", action="append", default=[],
                        help="block a plugin by entry-point or distribution name (repeatable; comma lists too)")
    parser.add_argument("--log-level", metavar="LEVEL", default="INFO", type=str.upper,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                        help="show what stages log from LEVEL up, tagged with the stage (default: INFO)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="show only warnings and errors that stages log (the same as --log-level WARNING)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parsers(sub)
    snapshot.add_parser(sub)
    runs.add_parser(sub)
    store.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:  # the fast path: no parser, no plugins
        from stagekit._version import version

        print(f"stagekit {version()}")
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from stagekit._version import version

        print(f"stagekit {version()}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from stagekit.cli.logs import resolve_level, stage_logs
    from stagekit.errors import StagekitError

    args.log_level = resolve_level(args.log_level, args.quiet)  # a number, for Pipeline.run(log_level=...)
    try:
        with stage_logs(args.log_level):
            code: int = args.func(args)
        return code
    except StagekitError as exc:
        return _report(exc, args.traceback)
    except KeyboardInterrupt:
        print("stagekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except BaseException as exc:  # plugin code outside a stage (sys.exit, a bug): named, never a silent exit
        return _unexpected(exc, args.traceback)


def _report(exc: BaseException, show_traceback: bool) -> int:
    from stagekit.errors import (
        ContractError,
        HookError,
        MergeConflictError,
        MergeError,
        RunInterrupted,
        StageError,
    )

    if show_traceback:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"stagekit: error: {exc}", file=sys.stderr)
    original = getattr(exc, "original", None)
    if isinstance(exc, StageError | HookError) and original is not None and not show_traceback:
        _where(original)
    result = getattr(exc, "result", None)
    others = [e for e in getattr(result, "errors", ()) if e is not exc]
    for other in others[:10]:
        print(f"  also: {other}", file=sys.stderr)
    if len(others) > 10:
        print(f"  ... and {len(others) - 10} more", file=sys.stderr)
    if isinstance(exc, RunInterrupted):
        if result is not None:
            print(_stages_by_status(result), file=sys.stderr)
        return 143 if exc.signal == "SIGTERM" else 130
    return 1 if isinstance(exc, StageError | ContractError | MergeConflictError | MergeError | HookError) else 2


def _where(exc: BaseException) -> None:
    """Where ``exc`` was raised, in one line: its innermost frame, or (from a worker process, whose traceback
    travels as a note) the innermost frame that note names."""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f"{last.filename}:{last.lineno} in {last.name}"
    else:
        lines = [line.strip() for note in getattr(exc, "__notes__", ()) for line in str(note).splitlines()
                 if line.strip().startswith('File "')]
        if not lines:
            return
        file, _, rest = lines[-1][len('File "'):].partition('", line ')
        number, _, name = rest.partition(", in ")
        where = f"{file}:{number} in {name} (in a worker)"
    print(f"  raised at {where} (--traceback for more)", file=sys.stderr)


def _stages_by_status(result: object) -> str:
    """"  finished: a, b; cancelled: c": what an interrupted run kept, and what it stopped."""
    groups: dict[str, list[str]] = {}
    for record in getattr(result, "stages", {}).values():
        groups.setdefault(record.status, []).append(record.name)
    labels = {"ok": "finished", "failed": "failed", "cancelled": "cancelled", "abandoned": "abandoned (still "
              "running in a thread)", "pending": "not started"}
    parts = [f"{labels.get(status, status)}: {', '.join(names)}" for status, names in groups.items()]
    return "  " + ("; ".join(parts) if parts else "no stage had started")


def _unexpected(exc: BaseException, show_traceback: bool) -> int:
    """Anything but a StagekitError that reached the top (it should not): one line, the place, exit 2."""
    if show_traceback:
        traceback.print_exception(exc, file=sys.stderr)
    what = f"sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else type(exc).__name__
    print(f"stagekit: error: unexpected {what}: {exc}" if not isinstance(exc, SystemExit) else
          f"stagekit: error: plugin code called {what} outside a stage", file=sys.stderr)
    if not show_traceback:
        _where(exc)
    return 2


if __name__ == "__main__":
    sys.exit(main())
