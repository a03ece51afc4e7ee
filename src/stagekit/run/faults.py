"""How the runner names what went wrong: lifecycle hooks that raise, merges that return the wrong type, and
the failures of a run, each as a :class:`~stagekit.errors.StagekitError` naming who is at fault.

Kept apart from the loop in :mod:`stagekit.run.runner`, which only calls these when something failed (or,
for :class:`HookCaller`, wraps hooks that some plugin implements).
"""

from __future__ import annotations

import signal
import threading
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType, UnionType
from typing import Any

import attrs

from stagekit.errors import HookError, MergeError, RunInterrupted, StageError, StagekitError, StageTimeoutError
from stagekit.graph.dag import Dag
from stagekit.plugins.registry import Provenance
from stagekit.records import RunInfo, RunResult

# --- hooks ------------------------------------------------------------------------------------------------


class HookCaller:
    """A lifecycle hook that some plugin implements, called so that whatever an implementation raises
    (``BaseException`` included; Ctrl-C stays an interrupt) becomes a :class:`HookError` naming the hook, the
    plugin (distribution and version where known) and the stage."""

    def __init__(self, caller: Any, name: str, describe: Callable[[str], str] | None) -> None:
        self.caller, self.name, self.describe = caller, name, describe

    def __call__(self, **kwargs: Any) -> None:
        try:
            self.caller(**kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            stage = kwargs.get("stage")
            raise self.error(exc, None if stage is None else stage.name) from exc

    def error(self, exc: BaseException, stage: str | None) -> HookError:
        plugin = _raiser(self.caller, exc.__traceback__)
        who = "a plugin" if plugin is None else (self.describe(plugin) if self.describe else f"plugin {plugin!r}")
        where = f" for stage {stage!r}" if stage else ""
        return HookError(f"hook {self.name}{where} of {who} raised {type(exc).__name__}: {exc}", hook=self.name,
                         plugin=who if plugin is not None else None, stage=stage, original=exc)


def implemented(hook: Any, name: str) -> Any:
    """The hook's caller if any plugin implements it, else None: hooks nobody implements cost nothing per
    stage. (The runner calls it directly and names what it raises with :meth:`HookCaller.error`.)"""
    if hook is None:
        return None
    caller = getattr(hook, name)
    return caller if caller.get_hookimpls() else None


def _raiser(caller: Any, tb: TracebackType | None) -> str | None:
    """The name of the plugin whose implementation is in the traceback (the innermost one), if any."""
    codes = {}
    for impl in caller.get_hookimpls():
        code = getattr(impl.function, "__code__", None)
        if code is not None:
            codes[code] = impl.plugin_name
    found = None
    while tb is not None:
        found = codes.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found


# --- merges -----------------------------------------------------------------------------------------------


@attrs.frozen
class TypeCheckedMerge:
    """A merge whose result must be of the artifact's declared type (``Stage.types``), else a
    :class:`MergeError` naming who registered the merge, the artifact and both types. It travels (Ray merges
    where the values are), so it holds plain data: the merge, the accepted classes, their label."""

    merge: Callable[[Any, list[Any]], Any]
    accepted: type | tuple[type, ...]
    label: str
    artifact: str

    def __call__(self, base: Any, branches: list[Any]) -> Any:
        merged = self.merge(base, branches)
        if isinstance(merged, self.accepted) or not all(isinstance(b, self.accepted) for b in branches):
            return merged  # right, or the branches were already of another type: a stage's doing, not the merge's
        table = getattr(self.merge, "__self__", None)
        lookup = getattr(table, "lookup", None)
        registration = lookup(type(branches[0])) if lookup is not None else None
        origin = registration.origin if registration is not None else "its plugin"
        raise MergeError(f"the merge for {type(branches[0]).__qualname__} registered by {origin} returned a "
                         f"{type(merged).__qualname__}, but artifact {self.artifact!r} is declared as {self.label}",
                         origin=origin, artifact=self.artifact)


def declared_type(dag: Dag, artifact: str) -> Any:
    """The type a stage of ``dag`` declares for ``artifact`` (``Stage.types``), None if none does."""
    role = dag.roles[artifact]
    for name in [*role.writers, *role.readers]:
        if name and artifact in dag.stages[name].types:
            return dag.stages[name].types[artifact]
    return None


def declared_label(dag: Dag, artifact: str) -> str:
    declared = declared_type(dag, artifact)
    return declared if isinstance(declared, str) else getattr(declared, "__qualname__", repr(declared))


def accepted_classes(declared: Any) -> type | tuple[type, ...] | None:
    """The classes ``isinstance`` can check a declared type against (``X``, ``X | Y``, ``list[int]`` -> list),
    or None where it cannot (a string that does not import, ``Any``, a protocol...)."""
    if isinstance(declared, str):
        from stagekit.stage import resolve_reference

        try:
            declared = resolve_reference(declared if ":" in declared else ":".join(declared.rsplit(".", 1)))
        except Exception:
            return None
    origin = typing.get_origin(declared)
    if origin in (typing.Union, UnionType):
        classes: list[type] = []
        for arg in typing.get_args(declared):
            found = accepted_classes(arg)
            if found is None:
                return None
            classes += found if isinstance(found, tuple) else [found]
        return tuple(classes)
    if origin is not None:
        declared = origin
    if isinstance(declared, type) and declared is not object and not getattr(declared, "_is_protocol", False):
        return declared
    return None


# --- naming a run's failures --------------------------------------------------------------------------


def named(error: BaseException, stage: str | None, origins: Mapping[str, Provenance], result: Any) -> BaseException:
    """The error to report for ``error`` (a stage's, a join's, a hook's...): stagekit's own keep their type
    (a contract, a merge conflict, a timeout) and gain the stage and the result; anything else a stage raised
    becomes a :class:`StageError` naming the stage and its plugin, with the original on ``.original``."""
    origin = origins.get(stage or "")
    where = f" [{origin}]" if origin else ""
    plugin = origin.plugin if origin else None
    if isinstance(error, StagekitError):
        error.result = result  # type: ignore[attr-defined]
        if getattr(error, "stage", None) is None and stage is not None:
            error.stage = stage  # type: ignore[attr-defined]
        if isinstance(error, StageError) and error.plugin is None and plugin is not None:
            error.plugin = plugin
            if isinstance(error, StageTimeoutError) and where and error.args and where not in str(error.args[0]):
                error.args = (str(error.args[0]).replace(f"stage {stage!r}", f"stage {stage!r}{where}", 1),)
        return error
    return StageError(f"stage {stage!r}{where} failed: {type(error).__name__}: {error}", stage=stage or "?",
                      plugin=plugin, original=error, result=result)


def run_timeout(stage: str, limit: float, *, started: bool = True) -> StageTimeoutError:
    doing = "was still running" if started else "had not started"
    return StageTimeoutError(f"stage {stage!r} {doing} when the run timed out after {limit:g} s (the run's "
                             "timeout)", stage=stage, timeout=limit, scope="run")


def conclude(result: RunResult, interrupted: list[str], hook: Any, info: RunInfo,
             describe: Callable[[str], str] | None) -> RunResult:
    """The end of a run: fire ``stagekit_after_run`` (what it raises is a :class:`HookError` that carries the
    result, never discarding the run), then return ``result`` or raise what ended the run: the interrupt, or
    the first of ``result.errors`` with the others noted on it."""
    hook_error: StagekitError | None = None
    if hook is not None and hook.stagekit_after_run.get_hookimpls():
        try:
            HookCaller(hook.stagekit_after_run, "stagekit_after_run", describe)(run=info, result=result)
        except StagekitError as exc:
            hook_error = exc
            exc.result = result  # type: ignore[attr-defined]
            if result.errors or interrupted:
                result.errors.append(exc)
    if interrupted:
        signal_name = "SIGTERM" if "SIGTERM" in interrupted else "SIGINT"
        what = "terminated (SIGTERM)" if signal_name == "SIGTERM" else "interrupted"
        error: StagekitError = RunInterrupted(f"run {what}; the stages that completed are kept on this error's "
                                              "result", result=result, signal=signal_name)
        _also(error, result.errors)
        raise error
    if result.errors:
        first = result.errors[0]
        _also(first, result.errors[1:])
        cause = getattr(first, "original", None)
        if cause is not None and cause is not first:
            raise first from cause
        raise first
    if hook_error is not None:
        raise hook_error
    return result


def _also(error: BaseException, others: list[BaseException]) -> None:
    """Note the run's other failures on the error raised (shown with its traceback; the CLI lists them)."""
    for other in others:
        if other is not error:
            error.add_note(f"also: {other}")


# --- SIGTERM ----------------------------------------------------------------------------------------------


@contextmanager
def sigterm_interrupts(received: list[str]) -> Iterator[None]:
    """While the run's loop runs (in the main thread, where SIGTERM has its default action): SIGTERM raises
    KeyboardInterrupt, so the run stops as on Ctrl-C (its workers killed, what finished kept) and
    ``received`` says it was SIGTERM. A second SIGTERM ends the driver at once, as the default would."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        received.append("SIGTERM")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
