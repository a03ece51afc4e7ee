"""Every exception stagekit raises.

One base, :class:`StagekitError`. Each error also subclasses the builtin it refines (``ValueError``,
``TypeError``, ``RuntimeError``) so existing ``except`` clauses keep working, and carries the offending
objects as attributes, not only as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class StagekitError(Exception):
    """Base of every error stagekit raises on purpose."""


# --- plugins and registration ------------------------------------------------------------------------


class PluginError(StagekitError, RuntimeError):
    """A plugin failed to load, to validate or to register (fatal only in strict mode)."""

    def __init__(self, message: str, *, plugin: str | None = None, distribution: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.distribution = distribution


class PluginConfigError(StagekitError, ValueError):
    """The plugin controls (allow list, block list, environment) name something that does not exist."""


class RegistrationError(StagekitError, ValueError):
    """Two plugins registered the same thing (a stage name, a merge for one type, an executor name)."""


class StageDefinitionError(StagekitError, TypeError):
    """A stage is declared wrongly (bad names, a signature that cannot take its artifacts...)."""


# --- pipelines ---------------------------------------------------------------------------------------


class PipelineError(StagekitError, ValueError):
    """A pipeline cannot be built. ``problems`` lists every problem found, not only the first."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems) or [message]


class CycleError(PipelineError):
    """The stages' declarations form a cycle. ``cycle`` is the path of stage names."""

    def __init__(self, message: str, cycle: Sequence[str]) -> None:
        super().__init__(message)
        self.cycle = list(cycle)


class PipelineFileError(StagekitError, ValueError):
    """A pipeline file is unreadable, has an unknown key or a value of the wrong type."""


# --- running -----------------------------------------------------------------------------------------


class StageError(StagekitError, RuntimeError):
    """A stage failed while running.

    ``stage`` is the stage's name, ``plugin`` who registered it, ``original`` the exception it raised and
    ``result`` the partial :class:`~stagekit.run.runner.RunResult`: everything produced before the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        stage: str,
        plugin: str | None = None,
        original: BaseException | None = None,
        result: Any = None,
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.plugin = plugin
        self.original = original
        self.result = result


class RunInterrupted(StagekitError, KeyboardInterrupt):
    """The run was interrupted (Ctrl-C, or SIGTERM to the driver). ``result`` keeps what completed;
    ``signal`` is "SIGINT" or "SIGTERM"."""

    def __init__(self, message: str, *, result: Any = None, signal: str = "SIGINT") -> None:
        super().__init__(message)
        self.result = result
        self.signal = signal


class ExecutorError(StagekitError, RuntimeError):
    """An executor is unknown, misconfigured, or lost a worker."""


class MergeConflictError(StagekitError, ValueError):
    """Branches changed the same artifact in ways its merge cannot combine.

    A merge function raises it with only a reason; the runner fills in ``join``, ``artifact`` and
    ``branches`` (the stages that changed the artifact) before it reaches the user.
    """

    def __init__(
        self,
        message: str,
        *,
        join: str | None = None,
        artifact: str | None = None,
        branches: Sequence[str] = (),
        path: Sequence[Any] = (),
    ) -> None:
        super().__init__(message)
        self.reason = message
        self.join = join
        self.artifact = artifact
        self.branches = list(branches)
        # where inside the value the conflict is: keys, fields or columns, outermost first
        self.path = list(path)

    def at(self, key: Any) -> MergeConflictError:
        """The same conflict, one level further out (a merge of a container adds the key it was merging)."""
        err = MergeConflictError(self.reason, join=self.join, artifact=self.artifact,
                                 branches=self.branches, path=[key, *self.path])
        return err

    def __str__(self) -> str:
        where = f"artifact {self.artifact!r}" if self.artifact else "value"
        if self.path:
            where += " at " + " -> ".join(repr(p) for p in self.path)
        parts = [f"merge conflict in {where}"]
        if self.join:
            parts.append(f"where branches join at {self.join!r}")
        if self.branches:
            parts.append("changed by " + ", ".join(repr(b) for b in self.branches))
        return " ".join(parts) + f": {self.reason}"


class MergeError(StagekitError, RuntimeError):
    """A merge function failed otherwise than with a conflict: it raised, or returned a value of another type.

    ``origin`` names who registered the merge; the runner fills in ``join``, ``artifact`` and ``branches``.
    """

    def __init__(self, message: str, *, origin: str | None = None, join: str | None = None,
                 artifact: str | None = None, branches: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reason = message
        self.origin = origin
        self.join = join
        self.artifact = artifact
        self.branches = list(branches)

    def __str__(self) -> str:
        where = f"merging artifact {self.artifact!r}" if self.artifact else "merging"
        if self.join:
            where += f" where branches join at {self.join!r}"
        if self.branches:
            where += " (changed by " + ", ".join(repr(b) for b in self.branches) + ")"
        return f"{where}: {self.reason}"


class ReportError(StagekitError, OSError):
    """The HTML report of a run cannot be written; ``path`` names the file. The run itself is kept."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ContractError(StagekitError, ValueError):
    """An artifact broke a stage's contract (schema) at a boundary, or two stages' contracts disagree."""

    def __init__(
        self,
        message: str,
        *,
        stage: str | None = None,
        artifact: str | None = None,
        boundary: str | None = None,
        failures: Any = None,
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.artifact = artifact
        self.boundary = boundary  # "input" or "output"
        self.failures = failures



class StageTimeoutError(StageError, TimeoutError):
    """A stage ran past its timeout (``@stage(timeout=...)``, the pipeline file's ``[timeouts]``), or was still
    running when the run's timeout ran out (``--timeout``, ``[pipeline] timeout``): ``scope`` says which
    ("stage" or "run"), ``timeout`` is that limit in seconds. The stage was stopped: its worker killed, or
    (where it runs in a thread, which cannot be killed) abandoned."""

    def __init__(self, message: str, *, stage: str = "?", timeout: float | None = None, scope: str = "stage",
                 plugin: str | None = None, result: Any = None) -> None:
        super().__init__(message, stage=stage, plugin=plugin, result=result)
        self.timeout = timeout
        self.scope = scope


class InputMutatedError(StageError):
    """A stage changed an artifact it was given, in place (found by the run's ``isolation="strict"`` check,
    which fingerprints each input before and after the stage). ``artifact`` names the input."""

    def __init__(self, message: str, *, stage: str = "?", artifact: str | None = None, plugin: str | None = None,
                 result: Any = None) -> None:
        super().__init__(message, stage=stage, plugin=plugin, result=result)
        self.artifact = artifact


class HookError(StagekitError, RuntimeError):
    """A lifecycle hook implementation raised. ``hook`` is the hook's name, ``plugin`` who implemented it
    (plugin, distribution and version where known), ``stage`` the stage it was called for (None for the
    run's hooks), ``original`` what it raised and ``result`` the run's result: a hook failing after the
    run succeeded keeps the whole run there (``result.ok`` tells how the run itself went)."""

    def __init__(self, message: str, *, hook: str | None = None, plugin: str | None = None,
                 stage: str | None = None, original: BaseException | None = None, result: Any = None) -> None:
        super().__init__(message)
        self.hook = hook
        self.plugin = plugin
        self.stage = stage
        self.original = original
        self.result = result

# --- workspace and snapshots -------------------------------------------------------------------------


class WorkspaceError(StagekitError, ValueError):
    """The workspace cannot be used, or a path or name given to it is not acceptable.

    ``path`` is the offending path (if any); ``problems`` lists every problem found, not only the first.
    """

    def __init__(self, message: str, *, path: str | None = None, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.path = path
        self.problems: list[str] = list(problems) or [message]


class WorkspaceLockedError(WorkspaceError):
    """Another process holds the workspace lock (e.g. it is creating a snapshot). ``holder`` says who."""

    def __init__(self, message: str, *, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


class SnapshotError(WorkspaceError):
    """A snapshot cannot be created, read, verified, restored or deleted. ``snapshot`` is its name."""

    def __init__(self, message: str, *, snapshot: str | None = None, path: str | None = None,
                 problems: Sequence[str] = ()) -> None:
        super().__init__(message, path=path, problems=problems)
        self.snapshot = snapshot


class SnapshotNotFoundError(SnapshotError, LookupError):
    """No snapshot has that name."""


class SnapshotExistsError(SnapshotError):
    """A snapshot with that name already exists (snapshots are immutable: delete it first)."""


class SnapshotCorruptError(SnapshotError):
    """Stored content no longer matches the manifest; ``problems`` lists every difference."""


# --- contracts, merges, scaffolding -----------------------------------------------------------------


class PipelineWarning(UserWarning):
    """Something the check before a run found worth knowing, that does not stop the run."""


class ContractWarning(PipelineWarning):
    """A contract was broken while its stage runs in "warn" mode (or will be, found before the run)."""


class ContractModeError(StagekitError, ValueError):
    """A contract mode is not one of "strict", "warn", "off"."""


class MergeStrategyError(StagekitError, ValueError):
    """A field names a merge strategy that does not exist, or one that does not fit its values."""


class ScaffoldError(StagekitError, ValueError):
    """The plugin name is invalid or its directory already exists."""


# --- the run store and the catalog --------------------------------------------------------------------


class CatalogError(StagekitError, RuntimeError):
    """A catalog dataset cannot be read or written. ``entry`` and ``path`` name the first that failed,
    ``problems`` lists every one; ``result`` is the run's result when the run itself succeeded."""

    def __init__(self, message: str, *, entry: str | None = None, path: str | None = None,
                 problems: Sequence[str] = (), result: Any = None) -> None:
        super().__init__(message)
        self.entry = entry
        self.path = path
        self.problems: list[str] = list(problems) or [message]
        self.result = result


class RunStoreError(StagekitError, RuntimeError):
    """The run database cannot be read or written (a full disk, a corrupt file, a newer schema); ``path``
    names the file. What it held before the failed write is kept."""

    def __init__(self, message: str, *, path: str | None = None, result: Any = None) -> None:
        super().__init__(message)
        self.path = path
        self.result = result


class CorruptObjectError(RunStoreError):
    """A stored object's bytes no longer match its digest, or it is gone: it is never used. ``path`` names
    the object, ``digest`` the content it should hold, ``stage`` the stage that stored it (where known)."""

    def __init__(self, message: str, *, path: str | None = None, digest: str | None = None,
                 stage: str | None = None) -> None:
        super().__init__(message, path=path)
        self.digest = digest
        self.stage = stage


class MissingInputError(RunStoreError, PipelineError):
    """A selected stage needs an artifact that nothing selected produces and that neither the catalog nor
    the run store holds for the current inputs. ``artifact`` names it, ``stage`` the stage that would
    produce it, ``reason`` why the store's runs of that stage do not fit."""

    def __init__(self, message: str, *, artifact: str, stage: str | None, reason: str = "") -> None:
        RunStoreError.__init__(self, message)
        self.problems = [message]
        self.artifact = artifact
        self.stage = stage
        self.reason = reason


# --- the run store --------------------------------------------------------------------------------------


class UnstorableError(StagekitError, TypeError):
    """A value cannot be stored: no codec is registered for its type, or its codec refuses it.

    ``value_type`` is the value's type (None when a codec raises it without knowing), ``reason`` says why.
    Such a value is not persisted and the stage that produced it is not cached.
    """

    def __init__(self, reason: str, *, value_type: type | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.value_type = value_type


class CodecError(StagekitError, RuntimeError):
    """A codec failed otherwise than by refusing a value: a bug in it, or a file it cannot read.

    ``codec`` is its name, ``origin`` who registered it.
    """

    def __init__(self, message: str, *, codec: str | None = None, origin: str | None = None) -> None:
        super().__init__(message)
        self.codec = codec
        self.origin = origin
