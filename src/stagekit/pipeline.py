"""A pipeline: a selection of stages, validated as a DAG before anything runs, and run over an executor."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from stagekit._collector import collector_paused
from stagekit.errors import ExecutorError, PipelineError, PipelineWarning
from stagekit.graph.checks import RunSettings, Validation
from stagekit.graph.dag import Dag, build_dag
from stagekit.plugins.registry import Provenance
from stagekit.records import RunInfo, RunResult
from stagekit.run.options import RunOptions
from stagekit.run.runner import run_dag
from stagekit.stage import Stage

if TYPE_CHECKING:
    from stagekit.plugins.host import Host
    from stagekit.store.runstore import RunStore


class Pipeline:
    """A selection of stages. ``Pipeline(stages).run(artifacts={...})`` runs them.

    Without a ``host`` it runs with the installed plugins (:meth:`Host.installed`, shared by the process), as
    ``stagekit run`` does: a plugin's merge, executor or validator applies however the pipeline is started.
    ``host=Host.isolated(...)`` runs with exactly the plugins given.
    """

    def __init__(self, stages: Iterable[Stage], *, host: Host | None = None, from_store: Iterable[str] = ()) -> None:
        self.stages = list(stages)
        self.from_store = frozenset(from_store)  # stages not selected whose outputs come from the run store
        self._host = host
        self._dags: dict[tuple[tuple[int, ...], frozenset[str]], Dag] = {}  # built DAGs, for runs again
        self._validated: tuple[Dag, RunSettings, Validation] | None = None  # the last check, for runs again

    @classmethod
    def from_host(
        cls,
        host: Host,
        names: Iterable[str] = (),
        tags: Iterable[str] = (),
        targets: Iterable[str] = (),
        given: Iterable[str] = (),
        *,
        plugins: Iterable[str] = (),
    ) -> Pipeline:
        """Stages from a host's registry by names, tags, or targets with everything upstream (stopping at the
        ``given`` initial artifacts). Where plugins that never heard of each other both create an artifact
        upstream, the creator of the targets' own plugin (or of one of ``plugins``) is taken."""
        from stagekit.graph.select import select_stages

        registry = host.registry
        plugin_of = {name: origin.plugin for name, origin in registry.stage_origins.items()}
        try:
            selected = select_stages(registry.stages, names, tags, targets, given, plugin_of=plugin_of,
                                     plugins=plugins)
        except PipelineError as exc:  # an unknown stage may be one of a plugin that failed to load
            hint = host.failed_plugins_hint()
            if not hint:
                raise
            problems = [p + hint if p.startswith("unknown stage") else p for p in exc.problems]
            raise PipelineError(problems[0], problems) from None
        return cls(selected, host=host)

    @property
    def host(self) -> Host:
        if self._host is None:
            from stagekit.plugins.host import Host

            self._host = Host.installed()
        return self._host

    @property
    def origins(self) -> dict[str, Provenance]:
        registry = self.host.registry
        return {s.name: registry.stage_origins[s.name] for s in self.stages if s.name in registry.stage_origins}

    def dag(self, initial: Iterable[str] = ()) -> Dag:
        """Build and validate the DAG given the names of the initial artifacts (cached: a pipeline run again
        with the same stages and initial artifacts reuses it; the cache holds the stages, so ids stay valid)."""
        key = (tuple(map(id, self.stages)), frozenset(initial))
        if key not in self._dags:
            self._dags = {key: self._build(key[1])}  # keep one: the latest
        return self._dags[key]

    def _build(self, initial: frozenset[str]) -> Dag:
        origins = self.origins

        def origin(name: str) -> str:
            o = origins.get(name)
            return f" [{o}]" if o else ""

        with collector_paused():
            return build_dag(self.stages, initial, origin)

    def validate(self, artifacts: Iterable[str] | Mapping[str, Any] = (),
                 settings: RunSettings | None = None) -> Validation:
        """Every static check of this pipeline run with ``settings``, given its initial artifacts (names or a
        mapping): exactly what ``run`` refuses before any stage starts, and what ``stagekit check`` reports."""
        settings = settings or RunSettings()
        try:
            dag = self.dag(artifacts)
        except PipelineError as exc:
            found = Validation()
            found.add("pipeline", exc.problems)
            return found
        cached = self._validated
        if cached is not None and cached[0] is dag and cached[1] == settings:  # a pipeline run again
            return cached[2]
        from stagekit.graph.checks import validate

        with collector_paused():
            found = validate(dag, self.host, settings)
        self._validated = (dag, settings, found)
        return found

    def check(self, artifacts: Iterable[str] | Mapping[str, Any] = (), contracts: str = "strict",
              stage_contracts: Mapping[str, str] | None = None, **settings: Any) -> list[str]:
        """Every problem :meth:`validate` finds (empty if none); ``settings`` are those of :meth:`run`."""
        run_settings = RunSettings(contracts=contracts, stage_contracts=dict(stage_contracts or {}), **settings)
        return self.validate(artifacts, run_settings).problems

    def run(
        self,
        artifacts: Mapping[str, Any] | None = None,
        *,
        executor: str = "sequential",
        workers: int | None = None,
        contracts: str = "strict",
        stage_contracts: Mapping[str, str] | None = None,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        executor_options: Mapping[str, Any] | None = None,
        snapshot: str | None = None,
        log_level: int | str | None = None,
        timeout: float | None = None,
        stage_timeouts: Mapping[str, float] | None = None,
        isolation: str = "copy",
        workspace: str | os.PathLike[str] | None = None,
        cache: bool = True,
        rerun: Iterable[str] = (),
        name: str = "pipeline",
    ) -> RunResult:
        """Run every stage once, in dependency order; return the artifacts and per-stage records.

        First every check of :meth:`validate`: a problem refuses the run before any stage starts (a
        ``PipelineError``, ``ExecutorError`` or ``ContractError`` listing them all); warnings are issued as
        :class:`~stagekit.PipelineWarning`. ``params`` overrides stage params per stage name. A failing stage
        raises :class:`StageError` (or the stagekit error it raised, e.g. a ``ContractError``) carrying the
        partial result. ``log_level`` is the level at which stages' log records are created and kept (on
        each ``StageRecord.logs``), under every executor; None: the driver's own (the root logger's) level.

        ``timeout`` limits the whole run and ``stage_timeouts`` (stage name -> seconds, over each stage's own
        ``@stage(timeout=...)``) single stages: past it, what runs is stopped and the run fails with a
        :class:`~stagekit.StageTimeoutError` naming the stage. ``isolation``: "copy" (frames reach stages as
        copy-on-write copies, arrays read-only) or "strict" (also fingerprint every other input before and
        after each stage: the stage that changed one fails with an :class:`~stagekit.InputMutatedError`).

        ``workspace`` (a folder; its ``.stagekit`` is created if missing) runs with its run store: what stages
        produce is stored, the run is recorded under ``name``, and a stage whose fingerprint matches an earlier
        run is reused instead of run (``cache=False``: none is; ``rerun``: these stages run anyway). See
        docs/store.md.
        """
        if isolation not in ISOLATION_MODES:
            raise PipelineError(f"isolation must be one of {', '.join(ISOLATION_MODES)}, not {isolation!r}")
        artifacts = dict(artifacts or {})
        settings = RunSettings(executor=executor, workers=workers, contracts=contracts,
                               stage_contracts=dict(stage_contracts or {}), params=dict(params or {}),
                               executor_options=dict(executor_options or {}), timeout=timeout,
                               stage_timeouts=dict(stage_timeouts or {}))
        found = self.validate(artifacts, settings)
        if not found.ok:
            raise found.error()
        from stagekit.run.logs import level_number

        level_number(log_level)  # an unknown level name is refused before any stage starts
        for warning in found.warnings:
            warnings.warn(warning, stacklevel=2)
        dag, host = self.dag(artifacts), self.host
        from stagekit.graph.checks import contract_checker

        checker = contract_checker(dag, host, contracts, settings.stage_contracts)
        store = None
        if workspace is not None or self.from_store:
            store = self._checked_store(dag, artifacts, workspace, name, snapshot, settings, cache, rerun)
        ex = make_executor(host, executor, workers, dict(settings.executor_options))
        info = RunInfo(uuid.uuid4().hex[:12], tuple(dag.order), executor, workers, contracts, snapshot)
        opts = RunOptions(executor=ex, merge=host.registry.merge_table.merge, hook=host.hook, checker=checker,
                          params=settings.params, origins=self.origins, info=info, log_level=log_level,
                          timeout=timeout, stage_timeouts=settings.stage_timeouts, strict=isolation == "strict",
                          describe_plugin=_describer(host), cache=store)
        if store is None:
            return run_dag(dag, artifacts, opts)
        with store.recording(host):
            return run_dag(dag, artifacts, opts)

    def _checked_store(self, dag: Dag, artifacts: Mapping[str, Any], workspace: str | os.PathLike[str] | None,
                       name: str, snapshot: str | None, settings: RunSettings, cache: bool,
                       rerun: Iterable[str]) -> RunStore:
        """The run's store, once it refused what it must before any stage starts and warned of what it keeps not."""
        store = self.run_store(workspace, name, snapshot, settings, cache=cache, rerun=rerun)
        store.check(dag, artifacts, settings.params)
        from stagekit.store.runstore import unstored_outputs

        for said in unstored_outputs(dag, store.table):
            warnings.warn(PipelineWarning(said), stacklevel=4)
        return store

    def run_store(self, workspace: str | os.PathLike[str] | None, name: str, snapshot: str | None,
                  settings: RunSettings, *, cache: bool = True, rerun: Iterable[str] = ()) -> RunStore:
        """The run store a run of this pipeline in ``workspace`` uses (what ``run`` and ``explain`` consult)."""
        from stagekit.store.runstore import RunStore

        if workspace is None:
            raise PipelineError(f"stages {', '.join(map(repr, sorted(self.from_store)))} are to come from the run "
                                "store, but no workspace is given")
        return RunStore(workspace, self.host, pipeline=name, snapshot=snapshot, params=settings.params,
                        contracts=settings.contracts, stage_contracts=settings.stage_contracts, cache=cache,
                        rerun=rerun, from_store=self.from_store, origins=self.origins)


ISOLATION_MODES = ("copy", "strict")


def _describer(host: Host) -> Callable[[str], str]:
    """A plugin's name as errors show it: "plugin 'x' (distribution stagekit-x 1.0)" where known."""

    def describe(name: str) -> str:
        try:
            return str(host.record(name).provenance)
        except KeyError:
            return f"plugin {name!r}"

    return describe


def make_executor(host: Host, name: str, workers: int | None, options: dict[str, Any]) -> Any:
    """Build a validated executor (:meth:`Pipeline.validate` checked its name, workers and options)."""
    try:
        return host.registry.executors[name](workers=workers, host=host.spec(), **options)
    except TypeError as exc:
        raise ExecutorError(f"executor {name!r} ({host.registry.executor_origins[name]}): {exc}") from exc
