"""What ``stagekit run FILE`` runs: a pipeline file (:mod:`stagekit.pipelinefile`) made runnable.

:func:`load_pipeline` returns exactly what ``stagekit run FILE`` runs, so that running it from Python gives the
same result: the installed plugins' stages the file selects, its initial artifacts and catalog, its settings,
the snapshot a run is pinned to and the workspace whose run store it uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import attrs

from stagekit.errors import PipelineWarning
from stagekit.graph.checks import RunSettings, Validation
from stagekit.pipelinefile import PipelineFile, load_pipeline_file
from stagekit.store.catalog import (
    CatalogEntry,
    CatalogInput,
    created_by,
    load_inputs,
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

__all__ = ["LoadedPipeline", "catalog_inputs", "load_pipeline", "pinned", "recorded_in"]


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
    _read: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False)  # catalog inputs, once read

    @property
    def workspace_root(self) -> Path | None:
        """Where runs are recorded and stages reused (:func:`recorded_in`); None: nowhere."""
        return recorded_in(self.workspace, self.file.workspace)

    def check(self) -> Validation:
        """What ``run`` would refuse before any stage starts: the pipeline's checks, and, where stages are to
        come from the run store, those it does not hold (the catalog's inputs they need are read then)."""
        found = self.pipeline.validate(self.artifacts, self.settings)
        if found.ok and self.workspace_root is not None:
            from stagekit.store.codecs import CodecTable
            from stagekit.store.runstore import unstored_outputs

            table = CodecTable.from_registrations(self.pipeline.host.registry.codecs)
            said = unstored_outputs(self.pipeline.dag(self.artifacts), table)
            if said:
                found = attrs.evolve(found, warnings=[*found.warnings, *map(PipelineWarning, said)])
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
        given = {**self.artifacts, **(self._read or {})}  # what check() or explain() read already, not read again
        return run_with_catalog(run, given, self.catalog, self.pipeline.host.registry.formats)

    def explain(self, *, cache: bool = True, rerun: Iterable[str] = ()) -> list[Plan]:
        """What a run would do with each stage, without running any (``stagekit explain``): run, cached or
        missing, and why. Outside a workspace every stage runs."""
        root = self.workspace_root
        dag = self.pipeline.dag(self.artifacts)
        if root is None:
            from stagekit.store.runstore import Plan

            return [Plan(n, "run", "no workspace: nothing is reused") for n in dag.order]
        if self._read is None:
            pending = {n: v.entry for n, v in self.artifacts.items() if isinstance(v, CatalogInput)}
            self._read = load_inputs(pending, (), self.pipeline.host.registry.formats) if pending else {}
        artifacts = {**self.artifacts, **self._read}
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
    if from_stages is not None or to_stages is not None:
        from stagekit.graph.select import narrow

        chosen = narrow(pipeline.stages, from_stages, to_stages)
        pipeline = Pipeline([s for s in pipeline.stages if s.name in chosen], host=host)
    if recorded_in(workspace, pf.workspace) is not None:
        pipeline = _with_stored_inputs(pipeline, artifacts, catalog, pf.plugins)
    artifacts.update(catalog_inputs(pipeline.stages, catalog, snapshot, workspace))
    return LoadedPipeline(pf, pipeline, artifacts, settings, snapshot, catalog, workspace)


def _with_stored_inputs(pipeline: Pipeline, artifacts: Mapping[str, Any], catalog: Mapping[str, CatalogEntry],
                        plugins: Iterable[str]) -> Pipeline:
    """The selection with the stages upstream that make what it needs and neither it nor the catalog does:
    in the pipeline as ``from_store`` (taken from the run store, never run)."""
    from stagekit.pipeline import Pipeline

    chosen = [s.name for s in pipeline.stages]
    made = created_by(pipeline.stages)
    given = [*artifacts, *(name for name in catalog if name not in made)]
    full = Pipeline.from_host(pipeline.host, targets=chosen, given=given, plugins=plugins)
    extra = {s.name for s in full.stages} - set(chosen)
    return Pipeline(full.stages, host=pipeline.host, from_store=extra) if extra else pipeline


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
