"""A pipeline: a selection of stages, validated as a DAG before anything runs, and run over an executor."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from stagekit._collector import collector_paused
from stagekit._text import unknown_name
from stagekit.errors import ExecutorError, PipelineError
from stagekit.graph.dag import Dag, build_dag
from stagekit.plugins.registry import Provenance
from stagekit.run.runner import RunInfo, RunOptions, RunResult, run_dag
from stagekit.stage import CONTRACT_MODES, Stage

if TYPE_CHECKING:
    from stagekit.plugins.host import Host


class Pipeline:
    """A selection of stages. ``Pipeline(stages).run(artifacts={...})`` runs them.

    Without a ``host`` it runs with the installed plugins (:meth:`Host.installed`, shared by the process), as
    ``stagekit run`` does: a plugin's merge, executor or validator applies however the pipeline is started.
    ``host=Host.isolated(...)`` runs with exactly the plugins given.
    """

    def __init__(self, stages: Iterable[Stage], *, host: Host | None = None) -> None:
        self.stages = list(stages)
        self._host = host
        self._dags: dict[tuple[tuple[int, ...], frozenset[str]], Dag] = {}  # built DAGs, for runs again

    @classmethod
    def from_host(
        cls,
        host: Host,
        names: Iterable[str] = (),
        tags: Iterable[str] = (),
        targets: Iterable[str] = (),
        given: Iterable[str] = (),
    ) -> Pipeline:
        """Stages from a host's registry by names, tags, or targets with everything upstream (stopping at the
        ``given`` initial artifacts)."""
        from stagekit.graph.select import select_stages

        return cls(select_stages(host.registry.stages, names, tags, targets, given), host=host)

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

    def check(
        self, initial: Iterable[str] = (), contracts: str = "strict", stage_contracts: Mapping[str, str] | None = None
    ) -> list[str]:
        """Every problem static validation finds (the DAG, merges, contracts); empty if none."""
        try:
            dag = self.dag(initial)
        except PipelineError as exc:
            return exc.problems
        from stagekit.graph.checks import static_problems

        return static_problems(dag, self.host, contracts, stage_contracts or {})

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
    ) -> RunResult:
        """Run every stage once, in dependency order; return the artifacts and per-stage records.

        ``params`` overrides stage params per stage name. A failing stage raises :class:`StageError` (or the
        stagekit error it raised, e.g. a ``ContractError``) carrying the partial result.
        """
        artifacts = dict(artifacts or {})
        if contracts not in CONTRACT_MODES:
            raise PipelineError(f"contracts must be one of {', '.join(CONTRACT_MODES)}, not {contracts!r}")
        dag = self.dag(artifacts)
        host = self.host
        checker = None
        if contracts != "off":
            from stagekit.graph.checks import contract_checker, refuse_incompatible

            checker = contract_checker(dag, host, contracts, stage_contracts or {})
            if checker is not None:
                refuse_incompatible(dag, host, checker)
        unknown = [n for n in (params or {}) if n not in dag.stages]
        if unknown:
            raise PipelineError(unknown_name("stage", unknown[0], dag.stages) + " in params")
        ex = make_executor(host, executor, workers, dict(executor_options or {}))
        table = host.registry.merge_table
        info = RunInfo(uuid.uuid4().hex[:12], tuple(dag.order), executor, workers, contracts, snapshot)
        opts = RunOptions(executor=ex, merge=table.merge, hook=host.hook, checker=checker,
                          params=params or {}, origins=self.origins, info=info)
        return run_dag(dag, artifacts, opts)


def make_executor(host: Host, name: str, workers: int | None, options: dict[str, Any]) -> Any:
    factories = host.registry.executors
    if name not in factories:
        raise ExecutorError(
            unknown_name("executor", name, factories) + f"; available: {', '.join(sorted(factories))}"
            + _missing_plugin_hint(host, name)
        )
    if workers is not None and workers < 1:
        raise ExecutorError(f"workers must be at least 1, not {workers}")
    try:
        return factories[name](workers=workers, host=host.spec(), **options)
    except TypeError as exc:
        raise ExecutorError(f"executor {name!r} ({host.registry.executor_origins[name]}): {exc}") from exc


# executors that plugins we know of provide: named only in a hint, and only where that plugin is really missing
_KNOWN_EXECUTOR_PLUGINS = {"ray": "stagekit-ray"}


def _missing_plugin_hint(host: Host, executor: str) -> str:
    distribution = _KNOWN_EXECUTOR_PLUGINS.get(executor)
    if distribution is None:
        return ""
    from stagekit.plugins.discovery import normalize

    found = [r for r in host.records if normalize(r.distribution or "") == distribution]
    if not found:
        return f" (the {executor!r} executor comes with: pip install {distribution})"
    rec = found[0]
    why = f": {rec.error}" if rec.error else ""
    return (f" ({distribution} {rec.version or ''} is installed, but its plugin {rec.name!r} is "
            f"{rec.status}{why})").replace("  ", " ")
