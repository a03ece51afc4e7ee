"""The run store of a workspace, as one run uses it: what to reuse, what to store, and the run's record.

:class:`RunStore` is the :class:`~stagekit.records.StageCache` the runner consults: a stage whose
fingerprint (:mod:`stagekit.store.fingerprints`) matches an earlier successful stage run whose outputs are
still in the object store is not run — its outputs come from the store (:mod:`stagekit.store.artifacts`),
read only when a stage that runs asks for one. Every other stage runs, and what it produces is stored by
content (by its worker where the executor allows, else here). The :class:`RunRecorder` it registers for the
run writes each stage run into the run database as it goes, with its fingerprint and why it ran.

Stages named in ``from_store`` are not selected: the selection needs what they made, which must come from the
store for the current inputs, or the run is refused naming it (:class:`~stagekit.errors.MissingInputError`).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from stagekit.errors import (
    CorruptObjectError,
    MissingInputError,
    PipelineError,
    PipelineWarning,
    RunStoreError,
    UnstorableError,
)
from stagekit.records import Decision, LazyValues, Reuse
from stagekit.run.incremental import Incremental
from stagekit.store.artifacts import ArtifactStore, StoredArtifact
from stagekit.store.codecs import CodecTable
from stagekit.store.fingerprints import StageFingerprint, code_digest, reason, stage_record, value_fingerprint
from stagekit.store.recorder import RunRecorder
from stagekit.store.rundb import RunDatabase, StageRun

if TYPE_CHECKING:
    from stagekit.graph.dag import Dag
    from stagekit.plugins.host import Host
    from stagekit.plugins.registry import Provenance
    from stagekit.stage import Stage

__all__ = ["Plan", "RunStore", "missing_error", "unstored_outputs"]


@attrs.frozen
class Plan:
    """What a run would do with one stage (``stagekit explain``): ``action`` is "run", "cached" or "missing"
    (a stage that is not selected, whose outputs the store does not hold for the current inputs)."""

    stage: str
    action: str
    reason: str
    saved: float = 0.0


class RunStore:
    """The run store of the workspace at ``root`` for one pipeline's runs (see the module's docstring).

    ``cache=False`` reuses nothing (what runs is still stored and recorded); ``rerun`` names stages that run
    even if they could be reused; ``params`` are the run's param overrides, by stage; ``contracts`` and
    ``stage_contracts`` the run's contract modes (they count in the fingerprints).
    """

    def __init__(self, root: str | os.PathLike[str], host: Host, *, pipeline: str, snapshot: str | None = None,
                 params: Mapping[str, Mapping[str, Any]] | None = None, contracts: str = "strict",
                 stage_contracts: Mapping[str, str] | None = None, cache: bool = True, rerun: Iterable[str] = (),
                 from_store: Iterable[str] = (), origins: Mapping[str, Provenance] | None = None) -> None:
        self.root = Path(root).absolute()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunStoreError(f"cannot make the workspace {str(self.root)!r}: {exc.strerror or exc}",
                                path=str(self.root)) from exc
        self.db = RunDatabase.in_workspace(self.root)  # opened first: a corrupt file is refused before any stage
        self.table = CodecTable.from_registrations(host.registry.codecs)
        self.artifacts = ArtifactStore(self.root, self.table)
        self.worker_store: ArtifactStore | None = self.artifacts
        self.pipeline = pipeline
        self.recorder = RunRecorder(self.db, pipeline, snapshot, params=params)
        self.enabled = cache
        self.rerun = frozenset(rerun)
        self.from_store = frozenset(from_store)
        self.contracts, self.stage_contracts = contracts, dict(stage_contracts or {})
        self.origins = dict(origins or {})
        self._initial: dict[str, tuple[Any, str | None]] = {}  # artifact -> (value, fingerprint), once a run
        self._unread: set[tuple[str, str]] = set()  # (stage, artifact) no stage of the run reads: verified here
        self._known = self.db.recorded_stages()  # a stage never recorded needs no lookup: "no earlier run"
        self._code: dict[int, tuple[Any, str]] = {}  # id(function) -> (function, code digest), once a run

    # --- before the run --------------------------------------------------------------------------------

    def check(self, dag: Dag, artifacts: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]]) -> None:
        """Refuse, before any stage starts, ``rerun`` names that are not stages of the run, and stages whose
        outputs must come from the store but are not there (only where that can be known before the run)."""
        read = {a for s in dag.stages.values() for a in s.requires}
        self._unread = {(s.name, a) for s in dag.stages.values() for a in s.provides if a not in read}
        unknown = sorted(self.rerun - set(dag.stages))
        problems = [f"--rerun {n!r}: no such stage in this run" + _close(n, dag.stages) for n in unknown]
        problems += [f"--rerun {n!r}: that stage is not selected (the run takes what it made from the run "
                     f"store); select it to run it again (e.g. --from {n})"
                     for n in sorted(self.rerun & self.from_store)]
        if problems:
            raise PipelineError(problems[0], problems)
        if self.from_store:
            for plan in self.explain(dag, artifacts, params):
                if plan.action == "missing":
                    stage = dag.stages[plan.stage]
                    raise _missing(stage, plan.reason)

    def explain(self, dag: Dag, artifacts: Mapping[str, Any],
                params: Mapping[str, Mapping[str, Any]]) -> list[Plan]:
        """What a run would do with each stage, in the DAG's order, without running any: a stage whose
        upstream runs is expected to run (it may still be reused, if what upstream makes comes out the same)."""
        from stagekit.graph.plan import plan_versions

        if dag.plan is None:
            dag.plan = plan_versions(dag)
        inc = Incremental(self, dag.plan, artifacts)
        plans: list[Plan] = []
        runs: set[str] = set()
        missing: set[str] = set()
        for name in dag.order:
            stage = dag.stages[name]
            upstream = [d for d in dag.deps[name] if d in runs]
            if upstream and name not in self.from_store:
                runs.add(name)
                plans.append(Plan(name, "run", f"upstream {upstream[0]!r} runs"))
                continue
            if upstream:  # to come from the store, after a stage that runs: known only once that has run
                lacking = [d for d in upstream if d in missing]
                if lacking:
                    runs.add(name)
                    missing.add(name)
                    plans.append(Plan(name, "missing", f"its upstream {lacking[0]!r} is not in the store either"))
                else:
                    plans.append(Plan(name, "cached", f"from the store if {upstream[0]!r} makes what it made before"))
                continue
            try:
                decision = inc.decide(stage, {**stage.params, **params.get(name, {})})
            except MissingInputError as exc:
                runs.add(name)
                missing.add(name)
                plans.append(Plan(name, "missing", exc.reason))
                continue
            if decision.reuse is None:
                runs.add(name)
                plans.append(Plan(name, "run", decision.reason))
            else:
                inc.produced(name, decision.reuse.stored)
                plans.append(Plan(name, "cached", decision.reason, decision.reuse.saved))
        return plans

    @contextlib.contextmanager
    def recording(self, host: Host) -> Iterator[None]:
        """The run recorded in the run database as it goes (the recorder is a lifecycle-hook plugin)."""
        manager = host.manager
        name = f"stagekit.run-recorder.{id(self.recorder)}"
        manager.register(self.recorder, name=name)
        try:
            yield
        finally:
            manager.unregister(name=name)

    # --- the runner's StageCache -----------------------------------------------------------------------

    def initial_fingerprint(self, artifact: str, value: Any) -> str | None:
        known = self._initial.get(artifact)
        if known is not None and known[0] is value:
            return known[1]
        try:
            found: str | None = value_fingerprint(value, self.table)
        except UnstorableError:
            found = None
        self._initial[artifact] = (value, found)
        return found

    def merged_fingerprint(self, artifact: str, base: str | None, branches: Sequence[str | None]) -> str | None:
        """A join's artifact, by its base and branches: the same inputs merge to the same value."""
        if base is None or any(b is None for b in branches):
            return None
        return hashlib.sha256("\0".join(["merge", artifact, base, *branches]).encode()).hexdigest()  # type: ignore[list-item]

    def decide(self, stage: Stage, params: Mapping[str, Any], inputs: Mapping[str, str | None], *,
               redo: str | None = None) -> Decision:
        mode = self.stage_contracts.get(stage.name) or stage.contract_mode or self.contracts
        func = stage.callable
        known = self._code.get(id(func))
        if known is None or known[0] is not func:
            known = self._code[id(func)] = (func, code_digest(func))
        fp = stage_record(stage, self.origins.get(stage.name), params, inputs, mode, table=self.table, code=known[1])
        only_stored = stage.name in self.from_store
        if redo is not None:
            why = redo
        elif not stage.cache and not only_stored:
            why = "cache=False: it always runs"
        elif stage.name in self.rerun:
            why = "asked to run again (--rerun)"
        elif not self.enabled and not only_stored:
            why = "the cache is off (--no-cache)"
        elif fp.digest is None:
            why = f"not cached: {fp.uncacheable}"
        elif stage.name not in self._known:
            why = "no earlier run"
        else:
            hit = self.db.latest_stage_run(stage.name, fp.digest)
            if hit is not None:
                stored, why = self._usable(stage, hit)
                if stored is not None:
                    if hit.status == "ok":
                        saved, origin = hit.duration, f"cached from run {hit.run_id}"
                    else:  # reused then too: name the run that made it
                        saved, origin = hit.saved, hit.reason or f"cached from run {hit.run_id}"
                    return Decision(fp, origin, Reuse(hit.run_id, saved, stored))
            else:
                why = self.why_again(stage.name, fp)
        if only_stored:
            raise _missing(stage, why)
        return Decision(fp, why)

    def why_again(self, stage: str, current: StageFingerprint) -> str:
        previous = self.db.previous_stage_run(stage, self.pipeline) or self.db.previous_stage_run(stage)
        parts = None if previous is None or previous.parts is None else StageFingerprint.from_dict(previous.parts)
        return reason(parts, current)

    def _usable(self, stage: Stage, hit: StageRun) -> tuple[dict[str, StoredArtifact] | None, str]:
        """The earlier run's stored outputs if every one is still in the store (a path still names the same
        files), else None and why not."""
        stored: dict[str, StoredArtifact] = {}
        for artifact in stage.provides:
            ref = StoredArtifact.from_json(hit.outputs.get(artifact))
            if ref is None:
                return None, (f"output {artifact!r} could not be stored in run {hit.run_id} (no codec takes its "
                              "value)")
            if not self.artifacts.has(ref):
                return None, f"the stored output {artifact!r} is gone (object {ref.object[:12]}...)"
            if (stage.name, artifact) in self._unread:  # a result of the run: no later stage would verify it
                try:
                    self.artifacts.verify(ref, artifact)
                except CorruptObjectError as exc:
                    warnings.warn(PipelineWarning(f"{exc}; stage {stage.name!r} runs again"), stacklevel=2)
                    return None, f"its stored output {artifact!r} was corrupt"
            if ref.path:
                try:
                    now = value_fingerprint(self.artifacts.load(ref, artifact), self.table)
                except CorruptObjectError as exc:
                    return None, str(exc)
                if now != ref.fingerprint:
                    return None, f"output {artifact!r} (a path) changed on disk"
            stored[artifact] = ref
        return stored, ""

    def reused_outputs(self, stage: Stage, reuse: Reuse) -> Mapping[str, Any]:
        """The earlier run's outputs, each read from the store the first time a stage asks for it."""
        def loader(artifact: str, ref: StoredArtifact) -> Any:
            def load() -> Any:
                try:
                    return self.artifacts.load(ref, artifact)
                except CorruptObjectError as exc:
                    exc.stage = stage.name  # the runner runs that stage again
                    raise
            return load

        return LazyValues({a: loader(a, ref) for a, ref in reuse.stored.items()})

    def store(self, stage: Stage, outputs: Mapping[str, Any]) -> dict[str, Any]:
        """The driver stores what a worker could not (an executor whose workers cannot reach the workspace)."""
        return dict(self.artifacts.put_all(outputs))


def unstored_outputs(dag: Dag, table: CodecTable) -> list[str]:
    """Outputs whose declared type (a stage's ``types``) no codec of ``table`` stores: not kept, their stage
    not reused (what ``check`` and ``run`` warn of in a workspace)."""
    return [f"stage {s.name!r}: its output {artifact!r}: {why}" for s in dag.stages.values()
            for artifact, kind in s.types.items()
            if artifact in s.provides and isinstance(kind, type) and (why := table.why_not(kind))]


def missing_error(stage: Stage, why: str) -> MissingInputError:
    """The refusal of a run whose ``stage`` is to come from the store, which holds no run of it that fits."""
    return _missing(stage, why)


def _missing(stage: Stage, why: str) -> MissingInputError:
    shown = ", ".join(map(repr, stage.provides)) or "its outputs"
    error = MissingInputError(
        f"{shown} must come from the run store (stage {stage.name!r}, which produces it, is not selected), but "
        f"the store holds no run of {stage.name!r} for the current inputs ({why}); select {stage.name!r} too "
        f"(e.g. --from {stage.name}) or run the whole pipeline once", artifact=(stage.provides or ("?",))[0],
        stage=stage.name, reason=why)
    return error


def _close(name: str, known: Iterable[str]) -> str:
    found = difflib.get_close_matches(name, list(known), n=3)
    return f" (did you mean {', '.join(map(repr, found))}?)" if found else ""
