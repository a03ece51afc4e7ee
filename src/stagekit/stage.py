"""The Stage record and the ``@stage`` decorator.

A stage is a frozen record: a callable plus the artifacts it requires and provides. The callable may be
named lazily as ``"module:attr"`` so that registering a stage imports nothing heavy; it is imported the first
time the stage runs. A stage pickles *by reference* (its callable travels as ``"module:qualname"``), so a
process or cluster executor can ship it without shipping code; a callable that no other process can import by
name (a lambda, a closure, a function of ``__main__``) stays in the pickle as the function itself, which the
executors serialize by value with cloudpickle.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal, overload

import attrs

from stagekit.errors import StageDefinitionError

ContractMode = Literal["strict", "warn", "off"]
CONTRACT_MODES: tuple[str, ...] = ("strict", "warn", "off")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _names(value: Iterable[str] | str | None, what: str, stage: str) -> tuple[str, ...]:
    if not value:  # None, or empty: the common case for after and tags
        return ()
    if isinstance(value, str):
        raise StageDefinitionError(
            f"stage {stage!r}: {what} must be a list of names, not the string {value!r} "
            f"(did you mean [{value!r}]?)"
        )
    names = tuple(value)
    for n in names:
        if not isinstance(n, str) or not _NAME.match(n):
            raise StageDefinitionError(f"stage {stage!r}: {what} has an invalid name {n!r}")
    if len(set(names)) == len(names):
        return names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise StageDefinitionError(f"stage {stage!r}: {what} lists {', '.join(map(repr, dupes))} twice")
    return names


def resolve_reference(ref: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the object it names."""
    module_name, sep, qualname = ref.partition(":")
    if not sep or not module_name or not qualname:
        raise StageDefinitionError(f"invalid reference {ref!r}: expected 'module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# the driver's main module (a script, ``python -c``, a notebook) under its two names: no worker imports it
_MAIN_MODULES = frozenset({"__main__", "__mp_main__"})


def _reference_of(func: Callable[..., Any]) -> str | None:
    """``"module:qualname"`` if ``func`` can be imported back by that name elsewhere, else None."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module in _MAIN_MODULES:
        return None
    return f"{module}:{qualname}"


@attrs.frozen(hash=False)
class Stage:
    """A named unit of work. Build one with :func:`stage`; treat it as immutable."""

    name: str
    func: Callable[..., Any] | str = attrs.field(repr=False)
    requires: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    params: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    inputs: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    outputs: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    contract_mode: ContractMode | None = None  # the stage's default contract mode; the run's if None
    types: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    timeout: float | None = None  # seconds; the executor stops the stage past it (StageTimeoutError)
    version: str | None = None  # bumped by its author to say "my results changed" (part of its fingerprint)
    cache: bool = True  # False: never reused from the run store (side effects, randomness)
    _resolved: Callable[..., Any] | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def callable(self) -> Callable[..., Any]:
        """The function to call, importing a lazy ``"module:attr"`` reference the first time."""
        resolved = self._resolved
        if resolved is not None:
            return resolved
        func = self.func
        if isinstance(func, str):
            try:
                target = resolve_reference(func)
            except StageDefinitionError:
                raise
            except Exception as exc:
                raise StageDefinitionError(f"stage {self.name!r}: cannot import {func!r}: {exc}") from exc
            func = target.callable if isinstance(target, Stage) else target
            if not callable(func):
                raise StageDefinitionError(f"stage {self.name!r}: {self.func!r} is not callable")
        object.__setattr__(self, "_resolved", func)  # a cache, not state: the record stays frozen
        return func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the stage's function directly (handy in tests: ``compute_returns(prices=df)``)."""
        return self.callable(*args, **kwargs)

    def evolve(self, **changes: Any) -> Stage:
        """A copy with some fields changed (``name=``, ``params=``...), validated like a new stage."""
        fields = {**_fields_of(self), **changes}
        changed: Stage = stage(fields.pop("func"), **fields)
        return changed

    def outputs_from(self, returned: Any) -> dict[str, Any]:
        """Turn what the function returned into ``{artifact: value}`` for the provided artifacts."""
        provides = self.provides
        if len(provides) == 1:
            if returned is None and not self._may_be_none(provides[0]):
                raise TypeError(f"stage {self.name!r} provides {provides[0]!r} but returned None (a missing return "
                                f"statement?); declare types={{{provides[0]!r}: ... | None}} if None is meant")
            return {provides[0]: returned}
        if not provides:
            if returned is not None:
                raise TypeError(f"stage {self.name!r} provides nothing but returned {type(returned).__name__}")
            return {}
        if not isinstance(returned, Mapping):
            raise TypeError(
                f"stage {self.name!r} provides {list(provides)} and must return a mapping with those keys, "
                f"not {type(returned).__name__}"
            )
        missing = [p for p in provides if p not in returned]
        extra = [k for k in returned if k not in provides]
        if missing or extra:
            detail = []
            if missing:
                detail.append(f"missing {missing}")
            if extra:
                detail.append(f"undeclared {extra}")
            raise TypeError(f"stage {self.name!r} returned a mapping with {' and '.join(detail)}")
        outputs = {p: returned[p] for p in provides}
        if self.types and any(v is None for v in outputs.values()):
            nones = [p for p, v in outputs.items() if v is None and p in self.types and not self._may_be_none(p)]
            if nones:
                raise TypeError(f"stage {self.name!r} returned None for {', '.join(map(repr, nones))}, whose "
                                f"declared type does not admit None")
        return outputs

    def _may_be_none(self, artifact: str) -> bool:
        """Whether None is a value this stage may provide for ``artifact``: only where its declared type
        admits it (``X | None``, ``Optional[X]``, ``Any``, ``object``, ``None``)."""
        if artifact not in self.types:
            return False
        declared = self.types[artifact]
        if declared is None or declared is type(None) or declared is object:
            return True
        import types as builtin_types
        import typing

        if declared is typing.Any:
            return True
        if typing.get_origin(declared) in (typing.Union, builtin_types.UnionType):
            return type(None) in typing.get_args(declared)
        return False

    def __reduce__(self) -> tuple[Any, ...]:
        # Ship the callable by reference so that workers import it instead of unpickling code; one no worker
        # can import (a lambda, a closure, a function of ``__main__``) stays the function, for cloudpickle.
        fields = _fields_of(self)
        if not isinstance(self.func, str):
            ref = _reference_of(self.func)
            if ref is not None:
                fields["func"] = ref
        return (_rebuild, (fields,))


def _fields_of(s: Stage) -> dict[str, Any]:
    return {
        "name": s.name, "func": s.func, "requires": s.requires, "provides": s.provides, "after": s.after,
        "tags": s.tags, "description": s.description, "params": dict(s.params), "inputs": dict(s.inputs),
        "outputs": dict(s.outputs), "contract_mode": s.contract_mode, "types": dict(s.types),
        "timeout": s.timeout, "version": s.version, "cache": s.cache,
    }


def _rebuild(fields: dict[str, Any]) -> Stage:
    return Stage(**fields)


def _summary(func: Callable[..., Any]) -> str:
    """The first paragraph of the function's docstring, as one line."""
    doc = getattr(func, "__doc__", None)
    if not isinstance(doc, str):
        return ""
    return " ".join(doc.strip().split("\n\n", 1)[0].split())


def _check_signature(name: str, func: Callable[..., Any], wanted: Iterable[str]) -> None:
    """Refuse a function that cannot take ``wanted`` by keyword, or needs something else."""
    found = _keyword_parameters(func)
    if found is None:  # **kwargs, or no signature to read (a builtin): trust it
        return
    accepted, needed = found
    missing = [w for w in wanted if w not in accepted]
    if missing:
        raise StageDefinitionError(
            f"stage {name!r}: its function {getattr(func, '__qualname__', func)!r} does not accept "
            f"{', '.join(map(repr, missing))} as keyword argument(s); required artifacts and params are "
            "passed by keyword"
        )
    required = [n for n in needed if n not in wanted]
    if required:
        raise StageDefinitionError(
            f"stage {name!r}: its function needs {', '.join(map(repr, required))}, which is neither a "
            "required artifact nor a param"
        )


_VARKEYWORDS = 0x08  # inspect.CO_VARKEYWORDS, without importing inspect


def _keyword_parameters(func: Callable[..., Any]) -> tuple[list[str], list[str]] | None:
    """(names it takes by keyword, those of them without a default), or None if it takes any keyword.

    A plain function is read from its code object (a tenth of ``inspect.signature``'s cost: defining a stage
    stays under 10 us); anything else (wrapped, partial, a callable object) through ``inspect``."""
    code = getattr(func, "__code__", None)
    if type(func).__name__ == "function" and code is not None and not hasattr(func, "__wrapped__"):
        if code.co_flags & _VARKEYWORDS:
            return None
        positional, keyword_only = code.co_argcount, code.co_kwonlyargcount
        names = code.co_varnames[: positional + keyword_only]
        by_keyword = list(names[code.co_posonlyargcount :])
        defaults = len(func.__defaults__ or ())
        kwdefaults = func.__kwdefaults__ or {}
        needed = [n for i, n in enumerate(names[:positional]) if i < positional - defaults]
        needed += [n for n in names[positional:] if n not in kwdefaults]
        return by_keyword, [n for n in needed if n in by_keyword]
    import inspect

    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    by_keyword = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return by_keyword, [p.name for p in params if p.name in by_keyword and p.default is p.empty]


@overload
def stage(
    func: Callable[..., Any] | str, /, *, name: str | None = ...,
    requires: Iterable[str] = ..., provides: Iterable[str] = ..., after: Iterable[str] = ...,
    tags: Iterable[str] = ..., description: str | None = ..., params: Mapping[str, Any] | None = ...,
    inputs: Mapping[str, Any] | None = ..., outputs: Mapping[str, Any] | None = ...,
    contract_mode: ContractMode | None = ..., types: Mapping[str, Any] | None = ...,
    timeout: float | None = ..., version: str | int | None = ..., cache: bool = ...,
) -> Stage: ...
@overload
def stage(
    func: None = None, /, *, name: str | None = ...,
    requires: Iterable[str] = ..., provides: Iterable[str] = ..., after: Iterable[str] = ...,
    tags: Iterable[str] = ..., description: str | None = ..., params: Mapping[str, Any] | None = ...,
    inputs: Mapping[str, Any] | None = ..., outputs: Mapping[str, Any] | None = ...,
    contract_mode: ContractMode | None = ..., types: Mapping[str, Any] | None = ...,
    timeout: float | None = ..., version: str | int | None = ..., cache: bool = ...,
) -> Callable[[Callable[..., Any]], Stage]: ...


def stage(
    func: Callable[..., Any] | str | None = None,
    /,
    *,
    name: str | None = None,
    requires: Iterable[str] = (),
    provides: Iterable[str] = (),
    after: Iterable[str] = (),
    tags: Iterable[str] = (),
    description: str | None = None,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    contract_mode: ContractMode | None = None,
    types: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    version: str | int | None = None,
    cache: bool = True,
) -> Stage | Callable[[Callable[..., Any]], Stage]:
    """Declare a stage, as a decorator or a call.

    ``@stage(requires=["prices"], provides=["returns"])`` on a function, or
    ``stage("my_pkg.heavy:compute", requires=[...], provides=[...])`` to import lazily.
    Required artifacts and ``params`` arrive as keyword arguments. One provided artifact: return its value;
    several: return a mapping of them. ``timeout`` (seconds) stops the stage when it runs longer, failing
    the run with a ``StageTimeoutError`` naming it; a stage that provides an artifact and returns None fails
    too, unless ``types`` says None is a value of that artifact.

    In a workspace a stage whose fingerprint (code, distribution, ``version``, params, contracts, inputs)
    matches an earlier run is reused: bump ``version`` when its results change but its code does not;
    ``cache=False`` always runs it (side effects, randomness).
    """
    options: dict[str, Any] = {
        "name": name, "requires": requires, "provides": provides, "after": after, "tags": tags,
        "description": description, "params": params, "inputs": inputs, "outputs": outputs,
        "contract_mode": contract_mode, "types": types, "timeout": timeout,
        "version": version, "cache": cache,
    }
    if func is None:
        return lambda f: _make(f, options)
    return _make(func, options)


def _make(func: Callable[..., Any] | str, options: dict[str, Any]) -> Stage:
    if isinstance(func, Stage):
        func = func.func
    if isinstance(func, str):
        default_name = func.rpartition(":")[2].rpartition(".")[2]
        if ":" not in func:
            raise StageDefinitionError(f"lazy stage reference {func!r} must look like 'module:attr'")
    elif callable(func):
        default_name = getattr(func, "__name__", "")
    else:
        raise StageDefinitionError(f"a stage needs a function or a 'module:attr' reference, not {func!r}")
    name = options["name"] or default_name
    if not isinstance(name, str) or not _NAME.match(name):
        raise StageDefinitionError(f"invalid stage name {name!r}")
    requires = _names(options["requires"], "requires", name)
    provides = _names(options["provides"], "provides", name)
    after = _names(options["after"], "after", name)
    tags = _names(options["tags"], "tags", name)
    if name in after:
        raise StageDefinitionError(f"stage {name!r} lists itself in after")
    params = _mapping(options["params"])
    clash = sorted(set(params) & set(requires)) if params else None
    if clash:
        raise StageDefinitionError(f"stage {name!r}: {clash} is both a param and a required artifact")
    inputs, outputs = _mapping(options["inputs"]), _mapping(options["outputs"])
    _keys_within(name, "inputs", inputs, requires, "requires")
    _keys_within(name, "outputs", outputs, provides, "provides")
    types = _mapping(options["types"])
    _keys_within(name, "types", types, requires + provides, "requires or provides")
    contract_mode = options["contract_mode"]
    if contract_mode is not None and contract_mode not in CONTRACT_MODES:
        raise StageDefinitionError(
            f"stage {name!r}: contract_mode must be one of {CONTRACT_MODES}, not {contract_mode!r}")
    if (timeout := options["timeout"]) is not None and (problem := timeout_problem(timeout)) is not None:
        raise StageDefinitionError(f"stage {name!r}: timeout {problem}")
    if (version := options["version"]) is not None and (type(version) is bool or not isinstance(version, str | int)):
        raise StageDefinitionError(f"stage {name!r}: version must be a string or an integer, not {version!r}")
    if not isinstance(options["cache"], bool):
        raise StageDefinitionError(f"stage {name!r}: cache must be True or False, not {options['cache']!r}")
    if callable(func):
        _check_signature(name, func, (*requires, *params) if params else requires)
    description = options["description"]
    if description is None:
        description = "" if isinstance(func, str) else _summary(func)
    return Stage(
        name=name, func=func, requires=requires, provides=provides, after=after, tags=tags,
        description=description, params=params, inputs=inputs, outputs=outputs, contract_mode=contract_mode,
        types=types, timeout=None if timeout is None else float(timeout),
        version=None if version is None else str(version), cache=options["cache"],
    )


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def timeout_problem(value: Any) -> str | None:
    """Why ``value`` is not a timeout (a positive, finite number of seconds), or None if it is one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number of seconds, not {type(value).__name__}"
    if not 0 < value < float("inf"):
        return f"must be a positive number of seconds, not {value!r}"
    return None


def _mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A stage's own copy of a mapping; the empty ones share one read-only instance (stages are many)."""
    return dict(value) if value else _EMPTY


def _keys_within(name: str, what: str, mapping: Mapping[str, Any], allowed: tuple[str, ...], label: str) -> None:
    if not mapping:
        return
    stray = sorted(k for k in mapping if k not in allowed)
    if stray:
        raise StageDefinitionError(f"stage {name!r}: {what} names {stray}, which are not in its {label}")
