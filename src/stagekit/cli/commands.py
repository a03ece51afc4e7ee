"""The pipeline commands: plugins, stages, graph, check, explain, run."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TextIO

from stagekit._text import table
from stagekit.cli import render

if TYPE_CHECKING:
    from stagekit.loading import LoadedPipeline
    from stagekit.plugins.host import Host


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("plugins", help="list the plugins found and whether they loaded")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("stages", help="list the stages the plugins registered")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_stages)

    p = sub.add_parser("graph", help="print a pipeline's DAG")
    p.add_argument("pipeline", help="a pipeline file (TOML)")
    p.add_argument("--format", choices=("mermaid", "dot", "json"), default="mermaid")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("check", help="validate a pipeline without running it")
    p.add_argument("pipeline", help="a pipeline file (TOML)")
    add_selection(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("explain", help="what a run would do (run, cached, missing) and why, running nothing",
                       description="Print, stage by stage, what `stagekit run` with the same options would do: "
                                   "run it (and why), reuse it from the run store (and the time that saves), or "
                                   "stop because an input is missing. Nothing runs and nothing is recorded; "
                                   "exit 1 if an input is missing.")
    p.add_argument("pipeline", help="a pipeline file (TOML)")
    add_selection(p)
    add_cache_options(p)
    p.add_argument("--contracts", choices=("strict", "warn", "off"), help="contract mode (default: the file's)")
    p.add_argument("--snapshot", metavar="NAME", help="as the run pinned to this workspace snapshot would")
    add_param_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("run", help="run a pipeline")
    p.add_argument("pipeline", help="a pipeline file (TOML)")
    add_selection(p)
    add_cache_options(p)
    p.add_argument("--executor", help="sequential, thread, process, or a plugin's (default: the file's)")
    p.add_argument("--workers", type=int, help="how many stages run at once")
    p.add_argument("--contracts", choices=("strict", "warn", "off"), help="contract mode (default: the file's)")
    p.add_argument("--snapshot", metavar="NAME", help="give stages this workspace snapshot's files as inputs")
    add_param_option(p)
    p.add_argument("--report", metavar="PATH", help="write an HTML report of the run (default: the file's [report])")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    p.add_argument("--timeout", metavar="SECONDS", type=float,
                   help="stop the run after SECONDS, naming the stages still running (default: the file's)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("new-plugin", help="write an installable stage-plugin package in the current directory")
    p.add_argument("name", help="the plugin's name, e.g. 'weather' (the package is stagekit-weather)")
    p.set_defaults(func=cmd_new_plugin)


def add_param_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", metavar="STAGE.KEY=VALUE", action="append", default=[],
                   help="override a stage param (repeatable); VALUE is read as TOML, e.g. 20, true, \"x\"")


def add_selection(p: argparse.ArgumentParser) -> None:
    """--stages, --tags (in place of the file's [pipeline] selection), --from, --to (narrowing it)."""
    g = p.add_argument_group("selection", "--stages and --tags replace the file's [pipeline] stages, tags and "
                                          "targets; --from and --to narrow the selection; in a workspace, inputs "
                                          "the selection does not produce come from the catalog or the run store")
    g.add_argument("--stages", metavar="NAME[,NAME]", action="append", default=[],
                   help="these stages (repeatable; comma lists too)")
    g.add_argument("--tags", metavar="TAG[,TAG]", action="append", default=[],
                   help="every stage with one of these tags (repeatable; comma lists too)")
    g.add_argument("--from", dest="from_stages", metavar="STAGE", action="append", default=[],
                   help="only this stage and what is downstream of it (repeatable)")
    g.add_argument("--to", dest="to_stages", metavar="STAGE", action="append", default=[],
                   help="only this stage and what is upstream of it (repeatable)")


def add_cache_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run store", "in a workspace, a stage whose code, params, contracts and inputs "
                                          "match an earlier run is reused (cached) instead of run")
    g.add_argument("--rerun", metavar="STAGE", action="append", default=[],
                   help="run STAGE even if it is cached (repeatable; comma lists too)")
    g.add_argument("--no-cache", action="store_true",
                   help="reuse nothing (what the stages produce is still stored and recorded)")


def names(values: Iterable[str]) -> list[str]:
    """Repeated options and comma lists as one list of names, in order, without blanks or repeats."""
    return list(dict.fromkeys(n.strip() for item in values for n in item.split(",") if n.strip()))


def selection(args: argparse.Namespace) -> dict[str, list[str]]:
    """The selection options given, as ``load_pipeline`` keywords (none given: the file's own selection)."""
    found = {key: names(getattr(args, key, ())) for key in ("stages", "tags", "from_stages", "to_stages")}
    return {key: value for key, value in found.items() if value}


def cache_options(args: argparse.Namespace) -> dict[str, Any]:
    """--no-cache and --rerun, as ``LoadedPipeline.run`` and ``explain`` keywords."""
    return {"cache": not getattr(args, "no_cache", False), "rerun": names(getattr(args, "rerun", ()))}


def refusing_missing_inputs(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A selected stage's input that nothing selected produces, and that neither the catalog nor the run store
    holds, is a one-line refusal (it names the artifact and the stage that would produce it): exit 1."""

    @functools.wraps(command)
    def refusing(args: argparse.Namespace) -> int:
        from stagekit.errors import MissingInputError

        try:
            return command(args)
        except MissingInputError as exc:
            if getattr(args, "traceback", False):
                traceback.print_exception(exc, file=sys.stderr)
            print(f"stagekit: error: {exc}", file=sys.stderr)
            return 1

    return refusing


def make_host(args: argparse.Namespace, **extra: Any) -> Host:
    from stagekit.plugins.host import Host

    block = [n.strip() for item in args.disable for n in item.split(",") if n.strip()]
    return Host(block=block, strict=True if args.strict_plugins else None, **extra)


def cmd_plugins(args: argparse.Namespace) -> int:
    host = make_host(args)
    records = [r.as_dict() for r in host.records]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    rows = [[r["name"], r["distribution"] or "-", r["version"] or "-", r["status"], _registered(r["registered"]),
              r["error"] or r["note"] or ""] for r in records]
    print(table(["plugin", "distribution", "version", "status", "registered", "note"], rows, rule=True))
    return 0


def _registered(found: dict[str, list[str]]) -> str:
    """"6 stages, 1 merge, 2 validators": what a plugin registered, counted by kind."""
    parts = []
    for kind, names in found.items():
        label = kind if len(names) != 1 else {"stages": "stage", "merges": "merge", "executors": "executor",
                                               "validators": "validator", "hooks": "hook",
                                               "codecs": "codec", "formats": "format"}.get(kind, kind)
        parts.append(f"{len(names)} {label}")
    return ", ".join(parts) or "-"


def cmd_stages(args: argparse.Namespace) -> int:
    host = make_host(args)
    reg = host.registry
    listing = [
        {"name": s.name, "plugin": reg.origin(s.name).plugin, "distribution": reg.origin(s.name).distribution,
         "requires": list(s.requires), "provides": list(s.provides), "tags": list(s.tags),
         "description": s.description}
        for s in sorted(reg.stages.values(), key=lambda s: s.name)
    ]
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    rows = [[s.name, reg.origin(s.name).plugin, ", ".join(s.requires), ", ".join(s.provides), ", ".join(s.tags)]
             for s in sorted(reg.stages.values(), key=lambda s: s.name)]
    print(table(["stage", "plugin", "requires", "provides", "tags"], rows, rule=True))
    return 0


def load(args: argparse.Namespace) -> LoadedPipeline:
    """The pipeline file as ``load_pipeline`` reads it from Python, with the command line's overrides."""
    from stagekit.loading import load_pipeline
    from stagekit.pipelinefile import parse_param

    params: dict[str, dict[str, Any]] = {}
    for text in getattr(args, "param", ()):
        stage_name, key, value = parse_param(text)
        params.setdefault(stage_name, {})[key] = value
    return load_pipeline(args.pipeline, host=make_host(args), params=params,
                         executor=getattr(args, "executor", None), workers=getattr(args, "workers", None),
                         contracts=getattr(args, "contracts", None), snapshot=getattr(args, "snapshot", None),
                         workspace=args.workspace, timeout=getattr(args, "timeout", None), **selection(args))


def cmd_graph(args: argparse.Namespace) -> int:
    loaded = load(args)
    dag = loaded.pipeline.dag(loaded.artifacts)
    if args.format == "json":
        from stagekit.graph.dag import describe

        print(json.dumps(describe(dag, loaded.pipeline.origins), indent=2))
    elif args.format == "dot":
        print(render.dot(dag))
    else:
        print(render.mermaid(dag))
    return 0


def checked(args: argparse.Namespace, *, stored: bool = True) -> tuple[LoadedPipeline | None, list[str],
                                                                       list[Warning]]:
    """The loaded pipeline and what the check before a run finds: the one validation ``check`` and ``run``
    share (names the file does not resolve, e.g. an unknown target or a --rerun name, are problems like any
    other). ``stored=False`` leaves out whether the run store holds what the selection needs (``explain``
    shows that, stage by stage)."""
    from stagekit._text import unknown_name
    from stagekit.errors import MissingInputError, PipelineError

    try:
        loaded = load(args)
    except MissingInputError:
        raise  # not a problem among others: one line (refusing_missing_inputs)
    except PipelineError as exc:
        return None, exc.problems, []
    found = loaded.check() if stored else loaded.pipeline.validate(loaded.artifacts, loaded.settings)
    known = [s.name for s in loaded.pipeline.stages]
    unknown = [f"--rerun {n!r}: {unknown_name('stage', n, known)} in this run"
               for n in names(getattr(args, "rerun", ())) if n not in known]
    return loaded, [*found.problems, *unknown], found.warnings


def refuse(args: argparse.Namespace, problems: list[str], *, ran: bool = False) -> int:
    """Print every problem, as ``check`` and ``run`` both do; exit status 1."""
    print(f"{args.pipeline}: {len(problems)} problem(s)" + ("; nothing was run" if ran else ""), file=sys.stderr)
    for p in problems:
        print(f"  - {p}", file=sys.stderr)
    return 1


@refusing_missing_inputs
def cmd_check(args: argparse.Namespace) -> int:
    """Exactly the checks ``run`` makes before any stage starts; exit 1 with every problem."""
    loaded, problems, found_warnings = checked(args)
    for warning in found_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if problems or loaded is None:
        return refuse(args, problems)
    stored = [s.name for s in loaded.pipeline.stages if s.name in loaded.pipeline.from_store]
    print(f"{args.pipeline}: OK ({len(loaded.pipeline.stages) - len(stored)} stages"
          + (f"; from the run store: {', '.join(stored)})" if stored else ")"))
    return 0


@refusing_missing_inputs
def cmd_explain(args: argparse.Namespace) -> int:
    """What ``run`` with these options would do, stage by stage; exit 1 if an input is missing."""
    loaded, problems, found_warnings = checked(args, stored=False)  # what is missing: shown, stage by stage
    for warning in found_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if problems or loaded is None:
        return refuse(args, problems)
    decisions = loaded.explain(**cache_options(args))
    root = loaded.workspace_root
    provides = {s.name: s.provides for s in loaded.pipeline.stages}
    if args.json:
        print(json.dumps(render.explain_json(decisions, pipeline=loaded.file.name, workspace=root,
                                             provides=provides), indent=2))
    else:
        print(render.explain(decisions, workspace=root, provides=provides))
    return 1 if any(d.action == "missing" for d in decisions) else 0


@refusing_missing_inputs
def cmd_run(args: argparse.Namespace) -> int:
    import warnings

    from stagekit.cli.progress import Progress
    from stagekit.errors import PipelineWarning, StagekitError

    loaded, problems, _ = checked(args)  # the run's own check is the same one (cached): nothing runs twice
    if problems or loaded is None:
        return refuse(args, problems, ran=True)
    progress = Progress(sys.stderr, enabled=not args.no_progress and not args.json and sys.stderr.isatty())
    loaded.pipeline.host.manager.register(progress, name="stagekit.cli.progress")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", PipelineWarning)  # each one reported, as one clean line
            warnings.showwarning = _warning_printer(progress)
            result = loaded.run(log_level=getattr(args, "log_level", None), **cache_options(args))
    except StagekitError as exc:
        progress.close()
        partial = getattr(exc, "result", None)
        if partial is not None:
            if args.json:
                print(json.dumps(partial.summary(), indent=2))
            try:
                write_report(args, loaded, partial)
            except StagekitError as failed:  # the run's own failure is the one to report
                print(f"stagekit: note: {failed}", file=sys.stderr)
        raise
    finally:
        loaded.pipeline.host.manager.unregister(name="stagekit.cli.progress")
    progress.close()
    if args.snapshot:
        record_run(args, result)
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        print(render.run_summary(result))
        shown = {a: result.artifacts[a] for a in loaded.file.report_artifacts or () if a in result.artifacts}
        for name, table_text in render.scalar_tables(shown):
            print(f"\n{name}:\n{table_text}")
    write_report(args, loaded, result)
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from stagekit._version import version
    from stagekit.cli.scaffold import new_plugin

    root = new_plugin(args.name, Path.cwd(), version())
    # this interpreter, by its full path: the line works pasted into a fresh shell, venv activated or not
    python = shlex.quote(sys.executable)
    print(f"wrote {root}\nnext: {python} -m pip install -e {shlex.quote(f'{root}[test]')} && "
          f"{python} -m pytest {shlex.quote(str(root / 'tests'))} && {python} -m stagekit.cli stages")
    return 0


def _warning_printer(progress: Any) -> Callable[..., None]:
    """How the CLI shows a warning: ours as one line naming the stage and artifact, others as Python does."""
    import warnings

    from stagekit.errors import PipelineWarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        progress.line.clear()
        if issubclass(category, PipelineWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    return show


def write_report(args: argparse.Namespace, loaded: LoadedPipeline, result: Any) -> None:
    """The HTML report, if asked for; a failed run gets one too (it shows what failed). A report that cannot
    be written is a ``ReportError`` naming the file; the run's result is kept (printed already)."""
    path = args.report or loaded.file.report_path
    if not path:
        return
    from stagekit.errors import ReportError
    from stagekit.report.html import write_report as render_report

    try:
        written = render_report(path, result, loaded.pipeline.dag(loaded.artifacts), title=loaded.file.name,
                                artifacts=loaded.file.report_artifacts)
    except OSError as exc:
        raise ReportError(f"the run's report cannot be written to {str(path)!r}: {exc.strerror or exc}; the run "
                          "itself completed as printed above", path=str(path)) from exc
    print(f"report: {written}", file=sys.stderr)


def record_run(args: argparse.Namespace, result: Any) -> None:
    from stagekit.workspace import Workspace

    ws = Workspace.locate(args.workspace)
    ws.record_run(result.run_id, {**result.summary(), "pipeline": str(args.pipeline), "snapshot": args.snapshot})
