"""Incremental runs, the runner's side: which stages to take from a run store instead of running them.

The runner knows which version of each artifact a stage reads (:mod:`stagekit.graph.plan`); this module keeps
the fingerprint of every version as the run goes — an initial artifact's from its value, a stage's output's
from what the stage stored (or, for a reused stage, what its earlier run stored), an artifact merged where
branches join from its base and branches — and asks the :class:`StageCache` (the run store,
:class:`stagekit.store.runstore.RunStore`) whether a stage with these inputs can be reused. The runner itself
stays ignorant of files, codecs and databases.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stagekit.errors import CorruptObjectError, PipelineWarning, RunStoreError, StagekitError
from stagekit.graph.dag import INITIAL
from stagekit.graph.plan import Merged, Version, VersionPlan
from stagekit.records import Decision, Outcome, StageCache, StageRecord

if TYPE_CHECKING:
    from stagekit.graph.dag import Dag
    from stagekit.run.options import RunOptions
    from stagekit.stage import Stage

__all__ = ["Incremental", "IncrementalSteps"]


class Incremental:
    """The fingerprints of a run's artifact versions, and the stages that must run again after all."""

    def __init__(self, cache: StageCache, plan: VersionPlan, initial: Mapping[str, Any]) -> None:
        self.cache = cache
        self.plan = plan
        self.initial = initial
        self.fps: dict[str, dict[str, str | None]] = {}  # stage -> artifact -> fingerprint of what it made
        self.merged: dict[tuple[str, Merged], str | None] = {}
        self.redo: dict[str, str] = {}  # stage -> why it runs again (a stored output of it was corrupt)
        self.waiting_for: dict[str, list[str]] = {}  # a stage running again -> the stages that wait for it

    def fingerprint(self, artifact: str, version: Version) -> str | None:
        if isinstance(version, str):
            if version == INITIAL:
                made = self.fps.setdefault(INITIAL, {})
                if artifact not in made:
                    made[artifact] = self.cache.initial_fingerprint(artifact, self.initial[artifact])
                return made[artifact]
            return self.fps.get(version, {}).get(artifact)
        key = (artifact, version)
        if key not in self.merged:
            base = self.fingerprint(artifact, version.base)
            branches = [self.fingerprint(artifact, w) for w in version.writers]
            self.merged[key] = self.cache.merged_fingerprint(artifact, base, branches)
        return self.merged[key]

    def decide(self, stage: Stage, params: Mapping[str, Any]) -> Decision:
        inputs = {a: self.fingerprint(a, v) for a, v in self.plan.inputs[stage.name]}
        return self.cache.decide(stage, params, inputs, redo=self.redo.get(stage.name))

    def produced(self, name: str, stored: Mapping[str, Any] | None) -> None:
        """What a stage stored (artifact -> StoredArtifact or a reason string): its outputs' fingerprints."""
        self.fps[name] = {a: getattr(s, "fingerprint", None) for a, s in (stored or {}).items()}

    def run_again(self, producer: str, waiting: str, why: str) -> bool:
        """``waiting`` cannot start: a stored output of ``producer`` is corrupt. True if ``producer`` must now
        be submitted again (False: it is being run again already)."""
        first = producer not in self.waiting_for
        self.waiting_for.setdefault(producer, []).append(waiting)
        self.redo[producer] = why
        return first


class IncrementalSteps:
    """The runner's steps with a run store (the runner's ``_Run`` has them): taking a stage from the store,
    running again the stage whose stored output turned out corrupt, and recording what a stage stored."""

    # what they use of the run (set by ``_Run``)
    inc: Incremental | None
    opts: RunOptions
    dag: Dag
    produced: dict[str, dict[str, Any]]
    records: dict[str, StageRecord]
    decisions: dict[str, Decision]
    instant: list[Outcome]

    if TYPE_CHECKING:
        def refuse(self, name: str, error: StagekitError) -> None: ...
        def submit(self, name: str) -> None: ...
        def fail(self, name: str | None, error: BaseException) -> None: ...
        def finished(self, name: str, stage: Any, record: StageRecord) -> bool: raise NotImplementedError
        def plugin_of(self, name: str) -> str | None: raise NotImplementedError
        def stage_failed(self, name: str, stage: Any, record: StageRecord, error: BaseException | None,
                         reported: BaseException) -> None: ...

    def reuse(self, name: str, stage: Any, params: dict[str, Any]) -> bool:
        """With a run store: True if the stage is taken from it (finished at once, without the executor)."""
        assert self.inc is not None
        try:
            decision = self.inc.decide(stage, params)
        except StagekitError as exc:  # an input that must come from the store is not there (MissingInputError)
            self.refuse(name, exc)
            return True
        if decision.reuse is None:
            self.decisions[name] = decision
            return False
        outputs = self.inc.cache.reused_outputs(stage, decision.reuse)  # read when a stage asks for one
        self.instant.append(Outcome(name, outputs, reused=decision))  # type: ignore[arg-type]
        return True

    def corrupt(self, name: str, exc: CorruptObjectError) -> None:
        producer = getattr(exc, "stage", None)
        if self.inc is None or producer is None or producer not in self.dag.stages:
            return self.refuse(name, exc)
        warnings.warn(PipelineWarning(f"{exc}; stage {producer!r} runs again"), stacklevel=2)
        if self.inc.run_again(producer, name, f"its stored output was corrupt ({exc.path})"):
            self.produced.pop(producer, None)
            self.submit(producer)

    def finish_reused(self, outcome: Outcome) -> bool:
        name, decision = outcome.name, outcome.reused
        assert self.inc is not None and decision.reuse is not None
        stage = self.dag.stages[name]
        self.records[name] = record = StageRecord(
            name, self.plugin_of(name), "cached", provided=stage.provides, reason=decision.reason,
            saved=decision.reuse.saved, fingerprint=decision.fingerprint, stored=decision.reuse.stored)
        self.produced[name] = outcome.outputs  # type: ignore[assignment]
        self.inc.produced(name, decision.reuse.stored)
        return self.finished(name, stage, record)

    def store(self, name: str, stage: Any, record: StageRecord, outcome: Outcome) -> bool:
        """What the stage stored (its worker did, else the driver stores it now); a failed write fails the run,
        naming the artifact (the outputs are kept in the result)."""
        assert self.inc is not None and outcome.outputs is not None
        stored = outcome.stored
        if stored is None:  # the worker could not reach the store: the driver writes (a Ray value fetched)
            materialize = self.opts.executor.materialize
            stored = self.inc.cache.store(stage, {a: materialize(v) for a, v in outcome.outputs.items()})
        self.inc.produced(name, stored)
        record.stored = {a: s for a, s in stored.items() if not isinstance(s, str)}
        failed = [(a, s) for a, s in stored.items() if isinstance(s, str) and s.startswith("error: ")]
        if failed:  # the stage failed to finish (its outputs are kept in the result); the run fails, naming it
            artifact, why = failed[0]
            error = RunStoreError(f"stage {name!r} ran, but its output {artifact!r} could not be stored: {why[7:]}")
            self.stage_failed(name, stage, record, error, error)
            return False
        return True
