"""The pipeline commands: plugins, stages, graph, check, run."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from stagekit._text import table
from stagekit.cli import render

if TYPE_CHECKING:
    from stagekit.cli.pipelinefile import PipelineFile
    from stagekit.pipeline import Pipeline
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
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="run a pipeline")
    p.add_argument("pipeline", help="a pipeline file (TOML)")
    p.add_argument("--executor", help="sequential, thread, process, or a plugin's (default: the file's)")
    p.add_argument("--workers", type=int, help="how many stages run at once")
    p.add_argument("--contracts", choices=("strict", "warn", "off"), help="contract mode (default: the file's)")
    p.add_argument("--snapshot", metavar="NAME", help="give stages this workspace snapshot's files as inputs")
    p.add_argument("--param", metavar="STAGE.KEY=VALUE", action="append", default=[],
                   help="override a stage param (repeatable); VALUE is read as TOML, e.g. 20, true, \"x\"")
    p.add_argument("--report", metavar="PATH", help="write an HTML report of the run (default: the file's [report])")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.add_argument("--no-progress", action="store_true", help="no live progress display")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("new-plugin", help="write an installable stage-plugin package in the current directory")
    p.add_argument("name", help="the plugin's name, e.g. 'weather' (the package is stagekit-weather)")
    p.set_defaults(func=cmd_new_plugin)


def make_host(args: argparse.Namespace, **extra: Any) -> Host:
    from stagekit.plugins.host import Host

    block = [n.strip() for item in args.disable for n in item.split(",") if n.strip()]
    return Host(block=block, strict=True if args.strict_plugins else None, **extra)


def cmd_plugins(args: argparse.Namespace) -> int:
    host = make_host(args)
    rows = [r.as_dict() for r in host.records]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    rows = [[r["name"], r["distribution"] or "-", r["version"] or "-", r["status"], _registered(r["registered"]),
              r["error"] or r["note"] or ""] for r in rows]
    print(table(["plugin", "distribution", "version", "status", "registered", "note"], rows, rule=True))
    return 0


def _registered(found: dict[str, list[str]]) -> str:
    """"6 stages, 1 merge, 2 validators": what a plugin registered, counted by kind."""
    parts = []
    for kind, names in found.items():
        label = kind if len(names) != 1 else {"stages": "stage", "merges": "merge", "executors": "executor",
                                               "validators": "validator", "hooks": "hook"}.get(kind, kind)
        parts.append(f"{len(names)} {label}")
    return ", ".join(parts) or "-"


def cmd_stages(args: argparse.Namespace) -> int:
    host = make_host(args)
    reg = host.registry
    rows = [
        {"name": s.name, "plugin": reg.origin(s.name).plugin, "distribution": reg.origin(s.name).distribution,
         "requires": list(s.requires), "provides": list(s.provides), "tags": list(s.tags),
         "description": s.description}
        for s in sorted(reg.stages.values(), key=lambda s: s.name)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    rows = [[s.name, reg.origin(s.name).plugin, ", ".join(s.requires), ", ".join(s.provides), ", ".join(s.tags)]
             for s in sorted(reg.stages.values(), key=lambda s: s.name)]
    print(table(["stage", "plugin", "requires", "provides", "tags"], rows, rule=True))
    return 0


def load(args: argparse.Namespace) -> tuple[PipelineFile, Pipeline]:
    from stagekit.cli.pipelinefile import load_pipeline_file
    from stagekit.pipeline import Pipeline

    pf = load_pipeline_file(args.pipeline)
    host = make_host(args)
    given = [*pf.artifacts, *(["snapshot", "snapshot_name"] if getattr(args, "snapshot", None) else [])]
    return pf, Pipeline.from_host(host, pf.stages, pf.tags, pf.targets, given)


def cmd_graph(args: argparse.Namespace) -> int:
    pf, pipeline = load(args)
    dag = pipeline.dag(pf.artifacts)
    if args.format == "json":
        from stagekit.graph.dag import describe

        print(json.dumps(describe(dag, pipeline.origins), indent=2))
    elif args.format == "dot":
        print(render.dot(dag))
    else:
        print(render.mermaid(dag))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from stagekit._text import unknown_name
    from stagekit.errors import PipelineError

    try:
        pf, pipeline = load(args)
        problems = pipeline.check(pf.artifacts, pf.contracts, pf.stage_contracts)
        executors = pipeline.host.registry.executors
    except PipelineError as exc:  # unknown stage, tag or target names in the file
        problems, executors = exc.problems, None
    if executors is not None and pf.executor not in executors:
        problems.append(unknown_name("executor", pf.executor, executors)
                        + f"; available: {', '.join(sorted(executors))}")
    if problems:
        print(f"{args.pipeline}: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"{args.pipeline}: OK ({len(pipeline.stages)} stages)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from stagekit.cli.pipelinefile import parse_param
    from stagekit.cli.progress import Progress

    pf, pipeline = load(args)
    params = {stage: dict(values) for stage, values in pf.params.items()}
    for text in args.param:
        stage_name, key, value = parse_param(text)
        params.setdefault(stage_name, {})[key] = value
    artifacts = dict(pf.artifacts)
    if args.snapshot:
        artifacts.update(snapshot_inputs(args))
    progress = Progress(sys.stderr, enabled=not args.no_progress and not args.json and sys.stderr.isatty())
    pipeline.host.manager.register(progress, name="stagekit.cli.progress")
    from stagekit.errors import StagekitError

    try:
        result = pipeline.run(
            artifacts, executor=args.executor or pf.executor,
            workers=args.workers if args.workers is not None else pf.workers,
            contracts=args.contracts or pf.contracts, stage_contracts=pf.stage_contracts, params=params,
            executor_options=pf.executor_options, snapshot=args.snapshot,
        )
    except StagekitError as exc:
        progress.close()
        partial = getattr(exc, "result", None)
        if partial is not None:
            write_report(args, pf, pipeline, partial, artifacts)
            if args.json:
                print(json.dumps(partial.summary(), indent=2))
        raise
    progress.close()
    if args.snapshot:
        record_run(args, result)
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        print(render.run_summary(result))
        shown = {a: result.artifacts[a] for a in pf.report_artifacts or () if a in result.artifacts}
        for name, table in render.scalar_tables(shown):
            print(f"\n{name}:\n{table}")
    write_report(args, pf, pipeline, result, artifacts)
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stagekit._version import version
    from stagekit.cli.scaffold import new_plugin

    root = new_plugin(args.name, Path.cwd(), version())
    print(f"wrote {root}\nnext: pip install -e {root} && pytest {root}/tests && stagekit stages")
    return 0


def write_report(args: argparse.Namespace, pf: PipelineFile, pipeline: Pipeline, result: Any,
                 initial: dict[str, Any]) -> None:
    """The HTML report, if asked for; a failed run gets one too (it shows what failed)."""
    path = args.report or pf.report_path
    if not path:
        return
    from stagekit.report.html import write_report as render_report

    written = render_report(path, result, pipeline.dag(initial), title=pf.name, artifacts=pf.report_artifacts)
    print(f"report: {written}", file=sys.stderr)


def snapshot_inputs(args: argparse.Namespace) -> dict[str, Any]:
    from stagekit.snapshots.workspace import Workspace

    ws = Workspace.locate(args.workspace)
    root = ws.checkout(args.snapshot)
    return {"snapshot": root, "snapshot_name": args.snapshot}


def record_run(args: argparse.Namespace, result: Any) -> None:
    from stagekit.snapshots.workspace import Workspace

    ws = Workspace.locate(args.workspace)
    ws.record_run(result.run_id, {**result.summary(), "pipeline": str(args.pipeline), "snapshot": args.snapshot})
