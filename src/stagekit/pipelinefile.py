"""Pipeline files (TOML): which stages, the initial artifacts and params, and how to run them.

:func:`load_pipeline` returns exactly what ``stagekit run FILE`` runs, so that running it from Python gives the
same result. Relative paths in the file resolve against the file's folder, wherever you stand: a string in
``[artifacts]`` that contains a ``/`` or names something that exists beside the file, and ``[report] path``.

```toml
[pipeline]
stages = ["read", "clean"]      # stage names; and/or
tags = ["dataops"]              # every stage with one of these tags; and/or
targets = ["report"]            # these stages and everything upstream (no selector: every stage)
plugins = ["weather"]           # where several plugins create an artifact upstream, take these plugins' stages
executor = "thread"             # sequential | thread | process | any registered executor
workers = 4
contracts = "strict"            # strict | warn | off
timeout = 3600                  # seconds for the whole run (also: stagekit run --timeout SECONDS)
workspace = "."                 # record runs and reuse stages in this folder's run store (docs/store.md)

[artifacts]                     # initial artifacts (relative paths: against this file's folder)
raw_dir = "data/raw"

[params.clean]                  # params for one stage, by stage name
window = 20

[contracts]                     # per-stage contract modes
clean = "warn"

[executor_options]              # passed to the executor (e.g. a Ray address)

[timeouts]                      # seconds per stage, by stage name (over the stage's own @stage(timeout=...))
clean = 60

[report]                        # an HTML report of the run (also: stagekit run --report PATH)
path = "report.html"
artifacts = ["metrics"]         # which artifacts to show (default: what the last stages provided)

[catalog.companies]             # a dataset (docs/store.md): read if no selected stage creates it, written
path = "data/companies.csv"     # after the run if one provides it; format from the extension or format = "..."
load_args = { sep = ";" }       # to the reader; save_args to the writer
```
Unknown keys and wrong types are errors that name the file and the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import attrs

from stagekit._text import unknown_name
from stagekit.errors import PipelineError, PipelineFileError
from stagekit.graph.checks import RunSettings, Validation
from stagekit.stage import CONTRACT_MODES
from stagekit.store.catalog import (
    CatalogEntry,
    CatalogInput,
    created_by,
    load_inputs,
    parse_catalog,
    plan_catalog,
    resolve_formats,
    run_with_catalog,
)

if TYPE_CHECKING:
    from stagekit.pipeline import Pipeline
    from stagekit.plugins.host import Host
    from stagekit.records import RunResult
    from stagekit.stage import Stage
    from stagekit.store.runstore import Plan

_TOP = {"pipeline", "artifacts", "params", "contracts", "executor_options", "report", "catalog", "timeouts"}
_REPORT: dict[str, type] = {"path": str, "artifacts": list}
_PIPELINE: dict[str, type | tuple[type, ...]] = {
    "name": str, "description": str, "stages": list, "tags": list, "targets": list, "plugins": list, "executor": str,
    "workers": int, "contracts": str, "timeout": (int, float), "workspace": str,
}


@attrs.frozen
class PipelineFile:
    path: Path
    name: str
    stages: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    executor: str = "sequential"
    workers: int | None = None
    contracts: str = "strict"
    artifacts: Mapping[str, Any] = attrs.field(factory=dict)
    params: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    stage_contracts: Mapping[str, str] = attrs.field(factory=dict)
    executor_options: Mapping[str, Any] = attrs.field(factory=dict)
    report_path: str | None = None
    report_artifacts: tuple[str, ...] | None = None
    catalog: Mapping[str, CatalogEntry] = attrs.field(factory=dict)  # formats not yet resolved (no host here)
    timeout: float | None = None  # [pipeline] timeout: the run's, in seconds
    stage_timeouts: Mapping[str, float] = attrs.field(factory=dict)  # [timeouts]: stage name -> seconds
    workspace: Path | None = None  # [pipeline] workspace, against the file's folder


def load_pipeline_file(path: str | Path) -> PipelineFile:
    """The parsed file, its relative paths resolved against its folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineFileError(f"pipeline file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineFileError(f"cannot read pipeline file {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PipelineFileError(f"{path}: invalid TOML: {exc}") from None
    return parse_pipeline(data, path)


def parse_pipeline(data: Mapping[str, Any], path: Path) -> PipelineFile:
    def fail(key: str, message: str) -> PipelineFileError:
        return PipelineFileError(f"{path}: key {key!r}: {message}")

    for key in data:
        if key not in _TOP:
            raise fail(key, f"unknown top-level key (expected one of {', '.join(sorted(_TOP))})")
        if not isinstance(data[key], dict):
            raise fail(key, f"must be a table, not {type(data[key]).__name__}")
    section = data.get("pipeline", {})
    for key, value in section.items():
        if key not in _PIPELINE:
            raise fail(f"pipeline.{key}", f"unknown key (expected one of {', '.join(sorted(_PIPELINE))})")
        wanted = _PIPELINE[key]
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise fail(f"pipeline.{key}", f"must be {_kind(wanted)}, not {type(value).__name__}")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise fail(f"pipeline.{key}", "must be a list of strings")
    mode = section.get("contracts", "strict")
    if mode not in CONTRACT_MODES:
        raise fail("pipeline.contracts", f"must be one of {', '.join(CONTRACT_MODES)}, not {mode!r}")
    if "workers" in section and section["workers"] < 1:
        raise fail("pipeline.workers", f"must be at least 1, not {section['workers']}")
    params = data.get("params", {})
    for stage_name, value in params.items():
        if not isinstance(value, dict):
            raise fail(f"params.{stage_name}", f"must be a table of params, not {type(value).__name__}")
    report = data.get("report", {})
    for key, value in report.items():
        if key not in _REPORT:
            raise fail(f"report.{key}", f"unknown key (expected one of {', '.join(sorted(_REPORT))})")
        if not isinstance(value, _REPORT[key]):
            raise fail(f"report.{key}", f"must be {_kind(_REPORT[key])}, not {type(value).__name__}")
    stage_contracts = data.get("contracts", {})
    for stage_name, value in stage_contracts.items():
        if value not in CONTRACT_MODES:
            raise fail(f"contracts.{stage_name}", f"must be one of {', '.join(CONTRACT_MODES)}, not {value!r}")
    catalog = _catalog(data, path)
    stage_timeouts = _timeouts(data, fail)
    return PipelineFile(
        path=path, name=section.get("name", path.stem), stages=tuple(section.get("stages", ())),
        tags=tuple(section.get("tags", ())), targets=tuple(section.get("targets", ())),
        plugins=tuple(section.get("plugins", ())),
        executor=section.get("executor", "sequential"), workers=section.get("workers"), contracts=mode,
        artifacts=_resolved(data.get("artifacts", {}), path.parent), params=params,
        stage_contracts=dict(stage_contracts), executor_options=dict(data.get("executor_options", {})),
        report_path=str((path.parent / report["path"]).absolute()) if "path" in report else None,
        report_artifacts=tuple(report["artifacts"]) if "artifacts" in report else None, catalog=catalog,
        timeout=section.get("timeout"), stage_timeouts=stage_timeouts,
        workspace=(path.parent / section["workspace"]).absolute() if "workspace" in section else None,
    )


def _timeouts(data: Mapping[str, Any], fail: Callable[[str, str], PipelineFileError]) -> dict[str, float]:
    """``[timeouts]``: a number of seconds per stage name (positive, and naming a stage: the run's check)."""
    found = {}
    for stage_name, value in data.get("timeouts", {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"timeouts.{stage_name}", f"must be a number of seconds, not {type(value).__name__}")
        found[stage_name] = value
    return found


def _catalog(data: Mapping[str, Any], path: Path) -> dict[str, CatalogEntry]:
    """The ``[catalog]`` entries; one that ``[artifacts]`` also names is an error naming both."""
    catalog = parse_catalog(data.get("catalog", {}), path.parent, source=path)
    for name in sorted(catalog.keys() & data.get("artifacts", {}).keys()):
        raise PipelineFileError(f"{path}: key 'catalog.{name}': artifact {name!r} is named in both [artifacts] "
                                f"and [catalog] (artifacts.{name} and catalog.{name}); keep one")
    return catalog


def _resolved(artifacts: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """String artifacts that are relative paths, as paths against the pipeline file's folder."""
    out = dict(artifacts)
    for name, value in artifacts.items():
        if isinstance(value, str) and value and not Path(value).is_absolute() and (
                "/" in value or (folder / value).exists()):
            out[name] = str((folder / value).resolve())
    return out


def parse_param(text: str) -> tuple[str, str, Any]:
    """``STAGE.KEY=VALUE`` from the command line; VALUE is read as TOML (``3``, ``true``, ``"x"``, ``[1, 2]``),
    else taken as a plain string."""
    target, sep, raw = text.partition("=")
    stage_name, dot, key = target.rpartition(".")
    if not sep or not dot or not stage_name or not key:
        raise PipelineFileError(f"--param {text!r}: expected STAGE.KEY=VALUE, e.g. clean.window=20")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if raw[:1] in "[{\"'" or raw.strip() != raw:  # meant as TOML, but broken: say so, never guess
            raise PipelineFileError(f"--param {text!r}: {raw!r} is not a valid TOML value (quote a string: "
                                    f"{stage_name}.{key}='\"...\"')") from None
        value = raw  # a bare word: a string
    return stage_name, key, value


def _kind(wanted: type | tuple[type, ...]) -> str:
    if wanted == (int, float):
        return "a number"
    return {str: "a string", list: "a list", int: "an integer"}.get(wanted if isinstance(wanted, type) else str,
                                                                     str(wanted))


# --- what ``stagekit run`` runs ---------------------------------------------------------------------------


@attrs.define
class LoadedPipeline:
    """A pipeline file made runnable: the stages it selects, its initial artifacts and how to run them.

    ``run()`` and ``check()`` are what ``stagekit run`` and ``stagekit check`` do (without printing).
    ``catalog`` holds the file's datasets (formats resolved); those the run reads stand in ``artifacts`` as
    :class:`~stagekit.store.catalog.CatalogInput` until ``run()`` reads them."""

    file: PipelineFile
    pipeline: Pipeline
    artifacts: dict[str, Any]
    settings: RunSettings
    snapshot: str | None = None
    catalog: dict[str, CatalogEntry] = attrs.field(factory=dict)
    workspace: str | Path | None = None  # where runs are recorded (see ``recorded_in``)

    @property
    def workspace_root(self) -> Path | None:
        """Where runs are recorded and stages reused (:func:`recorded_in`); None: nowhere."""
        return recorded_in(self.workspace, self.file.workspace)

    def check(self) -> Validation:
        """What ``run`` would refuse before any stage starts: the pipeline's checks, and, where stages are to
        come from the run store, those it does not hold (the catalog's inputs they need are read then)."""
        settings = attrs.evolve(self.settings, stored=self.workspace_root is not None)
        found = self.pipeline.validate(self.artifacts, settings)
        if found.ok and self.pipeline.from_store:
            from stagekit.store.runstore import missing_error

            missing = [p for p in self.explain() if p.action == "missing"]
            if missing:
                stages = {s.name: s for s in self.pipeline.stages}
                found = attrs.evolve(found, found=list(found.found))
                found.add("pipeline", [str(missing_error(stages[p.stage], p.reason)) for p in missing])
        return found

    def run(self, *, log_level: int | str | None = None, cache: bool = True, rerun: Iterable[str] = ()) -> RunResult:
        """Read the catalog's inputs, run, and write the catalog's produced datasets (also those that finished
        before a failure, then re-raising it). In a workspace (:attr:`workspace_root`) the run is recorded and
        stages are reused from its run store: ``cache=False`` reuses none, ``rerun`` names stages to run anyway."""
        def run(given: Mapping[str, Any]) -> RunResult:
            return self._run(given, log_level=log_level, cache=cache, rerun=rerun)

        if not self.catalog:
            return run(self.artifacts)
        return run_with_catalog(run, self.artifacts, self.catalog, self.pipeline.host.registry.formats)

    def explain(self, *, cache: bool = True, rerun: Iterable[str] = ()) -> list[Plan]:
        """What a run would do with each stage, without running any (``stagekit explain``): run, cached or
        missing, and why. Outside a workspace every stage runs."""
        root = self.workspace_root
        dag = self.pipeline.dag(self.artifacts)
        if root is None:
            from stagekit.store.runstore import Plan

            return [Plan(n, "run", "no workspace: nothing is reused") for n in dag.order]
        artifacts = self.artifacts
        pending = {n: v.entry for n, v in artifacts.items() if isinstance(v, CatalogInput)}
        if pending:
            artifacts = {**artifacts, **load_inputs(pending, (), self.pipeline.host.registry.formats)}
        store = self.pipeline.run_store(root, self.file.name, self.snapshot, self.settings, cache=cache, rerun=rerun)
        return store.explain(dag, artifacts, self.settings.params)

    def _run(self, artifacts: Mapping[str, Any], *, log_level: int | str | None, cache: bool,
             rerun: Iterable[str]) -> RunResult:
        s = self.settings
        return self.pipeline.run(
            artifacts, executor=s.executor, workers=s.workers, contracts=s.contracts,
            stage_contracts=s.stage_contracts, params=s.params, executor_options=s.executor_options,
            snapshot=self.snapshot, log_level=log_level, timeout=s.timeout, stage_timeouts=s.stage_timeouts,
            workspace=self.workspace_root, cache=cache, rerun=rerun, name=self.file.name)


def recorded_in(workspace: str | Path | None, declared: Path | None = None) -> Path | None:
    """The workspace whose run store a run uses: the one named (``--workspace``, $STAGEKIT_WORKSPACE), else
    the file's ``[pipeline] workspace``, else the nearest initialised one (holding ``.stagekit``) from the
    current directory up; else none."""
    from stagekit.snapshots.layout import STATE_DIR, Layout

    if workspace is None and not os.environ.get("STAGEKIT_WORKSPACE") and declared is not None:
        return declared
    located = Layout.locate(workspace)
    named = workspace is not None or bool(os.environ.get("STAGEKIT_WORKSPACE"))
    return located.root if named or (located.root / STATE_DIR).is_dir() else None


def load_pipeline(
    path: str | Path,
    *,
    host: Host | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    executor: str | None = None,
    workers: int | None = None,
    contracts: str | None = None,
    snapshot: str | None = None,
    workspace: str | Path | None = None,
    stages: Iterable[str] | None = None,
    tags: Iterable[str] | None = None,
    targets: Iterable[str] | None = None,
    timeout: float | None = None,
    from_stages: Iterable[str] | None = None,
    to_stages: Iterable[str] | None = None,
) -> LoadedPipeline:
    """The pipeline a file describes, as ``stagekit run`` runs it: the installed plugins (or ``host``), the
    file's settings with the given overrides (``params`` merge into the file's, key by key; ``stages``,
    ``tags``, ``targets``, any of them given, replace the file's selection; ``timeout``, the run's in seconds,
    replaces ``[pipeline] timeout``). ``from_stages`` narrows the selection to those stages and everything
    downstream of them, ``to_stages`` to those and everything upstream.

    In a workspace (see :func:`recorded_in`), what the selection needs but does not produce comes from the
    catalog, else from the run store: the stages that made it are in the pipeline, never run, taken from the
    store for the current inputs (``Pipeline.from_store``), or the run is refused naming them.

    ``snapshot`` pins the run to a workspace snapshot: every initial artifact that is a path inside what the
    snapshot holds reads the snapshot's read-only checkout instead of the live file; the checkout's root and
    the snapshot's name are initial artifacts too (``snapshot``, ``snapshot_name``), for stages that want them.
    """
    from stagekit.pipeline import Pipeline
    from stagekit.plugins.host import Host

    pf = load_pipeline_file(path)
    host = host or Host.installed()
    merged = {stage: dict(values) for stage, values in pf.params.items()}
    for stage, values in (params or {}).items():
        merged.setdefault(stage, {}).update(values)
    artifacts = dict(pf.artifacts)
    if snapshot is not None:
        artifacts = pinned(artifacts, snapshot, workspace)
    settings = RunSettings(
        executor=executor or pf.executor, workers=workers if workers is not None else pf.workers,
        contracts=contracts or pf.contracts, stage_contracts=dict(pf.stage_contracts), params=merged,
        executor_options=dict(pf.executor_options), timeout=timeout if timeout is not None else pf.timeout,
        stage_timeouts=dict(pf.stage_timeouts))
    catalog = resolve_formats(pf.catalog, host.registry.formats, source=pf.path) if pf.catalog else {}
    # upstream of a target stops at the given artifacts, and at catalog entries that no stage creates
    created = created_by(host.registry.stages.values()) if catalog else set()
    given = [*artifacts, *(name for name in catalog if name not in created)]
    selection = (pf.stages, pf.tags, pf.targets) if stages is None and tags is None and targets is None else (
        tuple(stages or ()), tuple(tags or ()), tuple(targets or ()))
    pipeline = Pipeline.from_host(host, *selection, given, plugins=pf.plugins)
    chosen = [s.name for s in pipeline.stages]
    if from_stages is not None or to_stages is not None:
        chosen = narrowed(pipeline.stages, from_stages, to_stages)
        pipeline = Pipeline([s for s in pipeline.stages if s.name in chosen], host=host)
    if recorded_in(workspace, pf.workspace) is not None:  # what the selection needs and does not make: stored?
        made = created_by(pipeline.stages)
        given = [*artifacts, *(name for name in catalog if name not in made)]
        full = Pipeline.from_host(host, targets=chosen, given=given, plugins=pf.plugins)
        extra = {s.name for s in full.stages} - set(chosen)
        if extra:
            pipeline = Pipeline(full.stages, host=host, from_store=extra)
    artifacts.update(catalog_inputs(pipeline.stages, catalog, snapshot, workspace))
    return LoadedPipeline(pf, pipeline, artifacts, settings, snapshot, catalog, workspace)


def narrowed(stages: Iterable[Stage], from_stages: Iterable[str] | None, to_stages: Iterable[str] | None) -> list[str]:
    """The names of ``stages`` downstream of (and including) ``from_stages`` and upstream of ``to_stages``;
    an unknown name is a :class:`PipelineError` naming close matches."""
    from stagekit.graph.select import downstream, upstream

    by_name = {s.name: s for s in stages}
    asked = [*(from_stages or ()), *(to_stages or ())]
    problems = [unknown_name("stage", n, by_name) for n in asked if n not in by_name]
    if problems:
        raise PipelineError(problems[0], problems)
    chosen = set(by_name)
    if from_stages is not None:
        chosen &= downstream(by_name, from_stages)
    if to_stages is not None:
        chosen &= upstream(by_name, to_stages)
    return [name for name in by_name if name in chosen]


def catalog_inputs(stages: Iterable[Stage], catalog: Mapping[str, CatalogEntry], snapshot: str | None = None,
                   workspace: str | Path | None = None) -> dict[str, CatalogInput]:
    """The catalog entries a run of ``stages`` reads (those a stage requires and none creates), as stand-ins
    that the run reads when it starts; pinned to ``snapshot``, those inside it read its checkout."""
    inputs = plan_catalog(catalog, stages).inputs
    if snapshot is not None and inputs:
        held = pinned({name: entry.path for name, entry in inputs.items()}, snapshot, workspace)
        inputs = {name: attrs.evolve(entry, path=held[name]) for name, entry in inputs.items()}
    return {name: CatalogInput(entry) for name, entry in inputs.items()}


def pinned(artifacts: Mapping[str, Any], snapshot: str, workspace: str | Path | None = None) -> dict[str, Any]:
    """``artifacts`` with every path inside what ``snapshot`` holds pointing into its read-only checkout."""
    from stagekit.workspace import Workspace

    ws = Workspace.locate(workspace)
    held = [PurePosixPath(p) for p in ws.snapshot(snapshot).paths]
    root = Path(ws.checkout(snapshot))
    out = {**artifacts, "snapshot": str(root), "snapshot_name": snapshot}
    for name, value in artifacts.items():
        if not isinstance(value, str | Path):
            continue
        try:
            rel = PurePosixPath(Path(value).resolve().relative_to(ws.root).as_posix())
        except ValueError:
            continue  # outside the workspace
        if any(rel == h or h in rel.parents or h == PurePosixPath(".") for h in held):
            out[name] = str(root / rel)
    return out
