"""The records that hooks, the runner and executors share: what a run is, how each stage went, what an
executor is handed and hands back. They sit at the bottom of the house so that hook specs, executors and
plugins can name them without importing the runner."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from stagekit.stage import Stage


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@attrs.frozen
class RunInfo:
    """What lifecycle hooks learn about a run."""

    run_id: str
    stages: tuple[str, ...]
    executor: str
    workers: int | None
    contracts: str
    snapshot: str | None = None


@attrs.frozen(slots=True)
class LogEntry:
    """One log record a stage emitted, as plain data that travels from any worker: the logger's name, the
    level (``logging.INFO``...), the message with its arguments applied, when (``time.time()``), and the
    formatted traceback of a record logged with ``exc_info`` (else None)."""

    logger: str
    level: int
    message: str
    created: float
    exc_text: str | None = None

    @property
    def level_name(self) -> str:
        import logging

        return logging.getLevelName(self.level)


@attrs.define
class StageRecord:
    """How one stage went: ``status`` is ok, failed, cancelled (never started, or stopped when the run failed,
    timed out or was interrupted: its worker killed) or abandoned (it was running in a thread, which cannot
    be killed, when the run ended: it may still be running, and whatever it returns is ignored); pending
    only while the run goes on; cached (in a run with the run store: reused from an earlier run, not run).
    ``duration`` in seconds; ``logs`` the records its code logged at the run's log level or above, wherever
    it ran. With the run store: ``reason`` says why it ran ("param top_n 20 → 30", "no earlier run") or which
    run it was reused from, ``saved`` the seconds a cached stage saved (its earlier run's duration),
    ``fingerprint`` the parts of its fingerprint (a :class:`~stagekit.store.fingerprints.StageFingerprint`)
    and ``stored`` what it stored, by artifact (:class:`~stagekit.store.artifacts.StoredArtifact`)."""

    name: str
    plugin: str | None = None
    status: str = "pending"
    duration: float = 0.0
    provided: tuple[str, ...] = ()
    error: BaseException | None = None
    warnings: list[Any] = ()  # type: ignore[assignment]  # a shared empty default: no list per stage
    logs: list[LogEntry] = ()  # type: ignore[assignment]  # the same
    reason: str | None = None
    saved: float = 0.0
    fingerprint: Any = None
    stored: Mapping[str, Any] = _EMPTY


@attrs.define
class RunResult:
    """The artifacts of a run and how each stage went.

    ``artifacts`` maps every artifact to its final value (merged where branches joined); ``outputs`` keeps
    what each stage returned, so nothing produced is lost even when a run fails. ``errors`` lists every
    failure of a failed run, the one raised first: ordered by the stages' places in the DAG's order (a
    failure where branches join at the stage that needed the merge), the same under every executor.
    """

    run_id: str
    ok: bool
    artifacts: dict[str, Any]
    stages: dict[str, StageRecord]
    outputs: dict[str, dict[str, Any]]
    duration: float
    executor: str
    snapshot: str | None = None
    errors: list[BaseException] = attrs.field(factory=list)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (no artifact values)."""
        return {
            "run_id": self.run_id, "ok": self.ok, "executor": self.executor, "snapshot": self.snapshot,
            "duration": round(self.duration, 6), "artifacts": sorted(self.artifacts),
            "stages": [
                {"name": r.name, "plugin": r.plugin, "status": r.status, "duration": round(r.duration, 6),
                 "reason": r.reason, "saved": round(r.saved, 6),
                 "provided": list(r.provided), "error": None if r.error is None else str(r.error),
                 "warnings": [str(w) for w in r.warnings],
                 "logs": [{"level": e.level_name, "logger": e.logger, "message": e.message} for e in r.logs]}
                for r in self.stages.values()
            ],
        }


class LazyValues(Mapping[str, Any]):
    """A mapping whose values are read the first time they are asked for (then kept): a reused stage's
    outputs, and a run's artifacts that come from the run store. ``loaders`` give the values not yet read."""

    __slots__ = ("_loaders", "_values")

    def __init__(self, loaders: Mapping[str, Callable[[], Any]], values: Mapping[str, Any] | None = None) -> None:
        self._loaders = dict(loaders)
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            load = self._loaders[key]
        value = self._values[key] = load()
        del self._loaders[key]
        return value

    def __iter__(self) -> Iterator[str]:
        return iter([*self._values, *self._loaders])

    def __len__(self) -> int:
        return len(self._values) + len(self._loaders)

    def __contains__(self, key: object) -> bool:
        return key in self._values or key in self._loaders

    def loaded(self, key: str) -> bool:
        return key in self._values

    def loader(self, key: str) -> Callable[[], Any]:
        """What gives the value of ``key`` (without reading it now)."""
        if key in self._values:
            value = self._values[key]
            return lambda: value
        return lambda: self[key]

    def __repr__(self) -> str:
        shown = [f"{k!r}: {'<not read>' if k in self._loaders else type(self._values[k]).__name__}" for k in self]
        return "LazyValues({" + ", ".join(shown) + "})"


@attrs.frozen
class StoredValue:
    """A big output that the worker which made it left in the run store instead of sending it back: the
    process executor hands this on, and whoever needs the value (the next stage's worker, a merge, the run's
    result) reads it from ``store`` (an ``ArtifactStore``) with :meth:`load`."""

    store: Any
    stored: Any  # a StoredArtifact
    artifact: str

    def load(self) -> Any:
        return self.store.load(self.stored, self.artifact)


# --- what the runner asks of a run store -------------------------------------------------------------


@attrs.frozen
class Reuse:
    """An earlier stage run to take the outputs of: its run, what it took, what it stored by artifact."""

    run_id: str | None
    saved: float
    stored: Mapping[str, Any]  # artifact -> StoredArtifact


@attrs.frozen
class Decision:
    """Whether a stage runs or is reused, and why. ``fingerprint`` is its fingerprint's parts (a
    ``StageFingerprint``), ``reuse`` the earlier run to reuse (None: it runs), ``reason`` in a few words."""

    fingerprint: Any
    reason: str
    reuse: Reuse | None = None


class StageCache(Protocol):
    """What the runner asks of a run store (see :class:`stagekit.store.runstore.RunStore` and
    :mod:`stagekit.run.incremental`)."""

    worker_store: Any  # handed to executors whose workers write their outputs themselves (Task.store)

    def initial_fingerprint(self, artifact: str, value: Any) -> str | None: ...

    def merged_fingerprint(self, artifact: str, base: str | None, branches: Sequence[str | None]) -> str | None: ...

    def decide(self, stage: Stage, params: Mapping[str, Any], inputs: Mapping[str, str | None], *,
               redo: str | None = None) -> Decision: ...

    def reused_outputs(self, stage: Stage, reuse: Reuse) -> Mapping[str, Any]: ...

    def store(self, stage: Stage, outputs: Mapping[str, Any]) -> dict[str, Any]: ...


# --- what executors are handed and hand back ----------------------------------------------------------


@attrs.frozen
class ContractSpec:
    """A run's contract settings as plain, picklable data: all a worker process needs to build its own
    checker (``stagekit.contracts.checker_for(spec)``) without the driver's plugin manager."""

    host: Any  # a HostSpec: the worker rebuilds the plugin host, for its validators, from entry-point names
    mode: str
    stage_modes: tuple[tuple[str, str], ...] = ()


class Checker(Protocol):
    """Checks a stage's contracts at a boundary; see :class:`stagekit.contracts.ContractChecker`."""

    spec: ContractSpec

    def check(self, stage: Stage, boundary: str, values: Any) -> list[Any]: ...


@attrs.define(slots=True)
class Task:
    """One stage to run: only the artifacts it requires and its params, by keyword, the run's checker, the
    level at which the stage's log records are created and kept (None: none are kept), the stage's timeout
    in seconds (None: none; the executor stops the stage when it has run that long and reports a
    ``StageTimeoutError``), and ``strict``: fingerprint the inputs before and after (``isolation="strict"``)."""

    stage: Stage
    kwargs: dict[str, Any]  # the required artifacts and the params, by keyword
    checker: Checker | None = None
    log_level: int | None = None
    timeout: float | None = None
    strict: bool = False
    store: Any = None  # an ArtifactStore the worker writes the outputs to (None: the driver does, or no store)


@attrs.define(slots=True)
class Outcome:
    """How a task went: its outputs (None when it failed), the error, its duration, contract warnings, and
    the log records the stage emitted. ``forwarded`` is True when those records were captured in another
    process (a worker), so the driver's handlers have not seen them yet: the runner re-emits them there.
    ``stopped`` is set (and ``outputs`` and ``error`` are None) for a task that ``Executor.cancel`` stopped:
    "cancelled" (it never started), "killed" (its worker was killed) or "abandoned" (it runs in a thread
    that cannot be stopped: whatever it returns is ignored). ``stored`` is what the worker wrote to the run
    store (artifact -> ``StoredArtifact``, or the reason it could not, a string); None if it wrote nothing.
    ``reused`` is set by the runner for a stage taken from the run store instead of run."""

    name: str
    outputs: dict[str, Any] | None  # None when the stage failed
    error: BaseException | None = None
    duration: float = 0.0
    warnings: list[Any] = ()  # type: ignore[assignment]  # shared empty default: no list per stage
    logs: list[LogEntry] = ()  # type: ignore[assignment]  # the same
    forwarded: bool = False
    stopped: str | None = None
    stored: dict[str, Any] | None = None
    reused: Any = None
