"""The core's own merges, registered through the ``stagekit_register_merges`` hook like any plugin's.

- ``collections.abc.Mapping``: key-level three-way, recursive (a key changed by several branches is merged by
  its value's own merge), deletions included.
- ``collections.abc.Set``: three-way set merge (every branch's additions and removals).
- ``pandas.DataFrame`` and ``pyarrow.lib.Table`` (by name: registering imports neither): column-wise, see
  :mod:`stagekit.merge.frames`.
- ``object``, the catch-all: a class's own ``__stagekit_merge__`` classmethod, else dataclasses and attrs
  classes field by field (per-field strategy in the field metadata under ``"stagekit_merge"``), else the
  branches must agree or it is a conflict.

A class with a ``__stagekit_merge__`` classmethod is merged by it even when it is also a mapping, a set, a
DataFrame...: the built-in merges defer to it. Only a merge registered for the class itself (or a closer base)
takes precedence.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import operator
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence, Set
from typing import Any

import attrs

from stagekit.errors import MergeConflictError, MergeStrategyError
from stagekit.hookspecs import hookimpl
from stagekit.merge.describe import display_name, short_repr
from stagekit.merge.equality import values_equal
from stagekit.merge.frames import merge_arrow_table, merge_dataframe, own_merge
from stagekit.merge.table import CURRENT_TABLE, MergeTable

__all__ = [
    "FIELD_STRATEGIES",
    "MERGE_METADATA_KEY",
    "MergeStrategyError",
    "builtin_merge_table",
    "merge_arrow_table",
    "merge_dataframe",
    "merge_mapping",
    "merge_object",
    "merge_set",
    "merge_values",
    "stagekit_register_merges",
]

MERGE_METADATA_KEY = "stagekit_merge"
"""The field-metadata key naming a dataclass or attrs field's merge strategy."""


class _Missing:
    """A key or field that is absent (distinct from None, which is a value)."""

    def __repr__(self) -> str:
        return "<absent>"


_MISSING: Any = _Missing()


@hookimpl
def stagekit_register_merges(register: Callable[[type | str, Callable[[Any, list[Any]], Any]], None]) -> None:
    register(Mapping, merge_mapping)
    register(Set, merge_set)
    register("pandas.DataFrame", merge_dataframe)
    register("pyarrow.lib.Table", merge_arrow_table)
    register(object, merge_object)


# --- merging nested values ---------------------------------------------------------------------------


def merge_values(base: Any, branches: Sequence[Any]) -> Any:
    """Merge nested values from inside a merge function, through the table of the merge that is running.

    Use it for recursion: a mapping's key or an object's field changed by several branches is merged by its
    own value's merge. Outside a running merge it falls back to a table of the built-in merges only.
    """
    table = CURRENT_TABLE.get(None)
    return (_fallback_table() if table is None else table).merge(base, branches)


def builtin_merge_table() -> MergeTable:
    """A new table of the core's merges only (mapping, set, DataFrame, Arrow Table, dataclass/attrs...)."""
    table = MergeTable()
    stagekit_register_merges(lambda value_type, merge: table.add(value_type, merge, "stagekit (built-in merges)"))
    return table


_fallback_table = functools.cache(builtin_merge_table)


def _at(err: MergeConflictError, key: Any) -> MergeConflictError:
    return err.at(key).with_traceback(err.__traceback__)


# --- mappings ------------------------------------------------------------------------------------------


def merge_mapping(base: Any, branches: list[Any]) -> Any:
    """Key-level three-way merge; the result keeps base's key order, then new keys in branch order.

    A key changed by one branch takes that value; changed by several, its values are merged by
    :func:`~stagekit.merge.table.merge_values`. A key deleted by a branch and left alone (or set to its old value)
    by the others is deleted; deleted by one and changed by another is a conflict.
    """
    own = own_merge(branches)
    if own is not None:
        return own(base, branches)
    old: Mapping[Any, Any] = base if isinstance(base, Mapping) else {}
    keys: dict[Any, None] = dict.fromkeys(old)
    for branch in branches:
        keys.update(dict.fromkeys(branch))
    out: dict[Any, Any] = {}
    for key in keys:
        try:
            value = _merge_entry(old.get(key, _MISSING), [b.get(key, _MISSING) for b in branches])
        except MergeConflictError as err:
            raise _at(err, key) from None
        if value is not _MISSING:
            out[key] = value
    return _rebuild_mapping(branches[0], out)


def _merge_entry(old: Any, values: list[Any]) -> Any:
    changed = [v for v in values if v is not old]
    if not changed:
        return old
    if old is _MISSING:  # added by the branches
        nones = [v is None for v in changed]
        if any(nones) and not all(nones):
            raise MergeConflictError(f"added as None by one branch and as {_other(changed)} by another")
        return merge_values(None, changed)
    if any(v is _MISSING for v in changed):
        edits = [v for v in changed if v is not _MISSING and not values_equal(v, old)]
        if edits:
            raise MergeConflictError(
                f"deleted by one branch and changed by another (from {short_repr(old)} to "
                f"{short_repr(edits[0])})"
            )
        return _MISSING
    return merge_values(old, changed)


def _other(values: list[Any]) -> str:
    return short_repr(next(v for v in values if v is not None))


def _rebuild_mapping(template: Any, items: dict[Any, Any]) -> Any:
    cls = type(template)
    if cls is dict:
        return items
    if isinstance(template, dict):  # OrderedDict, defaultdict, Counter...: keep the subclass and its state
        out = copy.copy(template)
        out.clear()
        out.update(items)
        return out
    try:
        return cls(items)
    except Exception as exc:
        raise MergeConflictError(
            f"cannot build a {display_name(cls)} from the merged keys ({exc}); register a merge for "
            f"{display_name(cls)} or give it a __stagekit_merge__ classmethod"
        ) from exc


# --- sets ----------------------------------------------------------------------------------------------


def merge_set(base: Any, branches: list[Any]) -> Any:
    """Three-way set merge: base, minus what any branch removed, plus what any branch added."""
    own = own_merge(branches)
    if own is not None:
        return own(base, branches)
    old: Set[Any] = base if isinstance(base, Set) else frozenset()
    removed: set[Any] = set()
    added: dict[Any, None] = {}
    for branch in branches:
        removed.update(x for x in old if x not in branch)
        added.update(dict.fromkeys(x for x in branch if x not in old))
    items = [x for x in old if x not in removed]
    items.extend(added)
    return _rebuild_collection(branches[0], items)


def _rebuild_collection(template: Any, items: list[Any]) -> Any:
    cls = type(template)
    if cls in (list, tuple, set, frozenset):
        return cls(items)
    build = getattr(cls, "_from_iterable", cls)  # the collections.abc constructor hook
    try:
        return build(items)
    except Exception as exc:
        raise MergeConflictError(
            f"cannot build a {display_name(cls)} from the merged items ({exc}); register a merge for it"
        ) from exc


# --- everything else: the merge method, dataclasses and attrs classes, plain values ----------------------


class _ObjectMerge:
    """The catch-all merge registered for ``object``."""

    __name__ = "merge_object"

    def __call__(self, base: Any, branches: list[Any]) -> Any:
        own = own_merge(branches)
        if own is not None:
            return own(base, branches)
        cls = type(branches[0])
        if dataclasses.is_dataclass(cls) or attrs.has(cls):
            return _merge_fields(cls, base, branches)
        return _merge_plain(base, branches, cls)

    @staticmethod
    def supports(cls: type) -> bool:
        """Whether the catch-all can combine two different changes (else any such pair is a conflict)."""
        method = getattr(cls, "__stagekit_merge__", None)
        return callable(method) or dataclasses.is_dataclass(cls) or attrs.has(cls)


merge_object = _ObjectMerge()


def _merge_plain(base: Any, branches: list[Any], cls: type) -> Any:
    changed = [v for v in branches if not values_equal(v, base)]
    if not changed:
        return base
    if all(values_equal(changed[0], v) for v in changed[1:]):
        return changed[0]
    raise MergeConflictError(
        f"{display_name(cls)} has no merge and the branches changed it from {short_repr(base)} to different "
        f"values: {', '.join(short_repr(v) for v in changed)} (register a merge for the type, give it a "
        "__stagekit_merge__ classmethod, or order the stages with after=[...])"
    )


@attrs.frozen
class _Field:
    name: str
    init_name: str
    init: bool
    strategy: Any


@functools.cache
def _fields(cls: type) -> tuple[_Field, ...]:
    if dataclasses.is_dataclass(cls):
        return tuple(
            _Field(f.name, f.name, f.init, f.metadata.get(MERGE_METADATA_KEY, "replace"))
            for f in dataclasses.fields(cls)
        )
    return tuple(
        _Field(f.name, f.alias or f.name, f.init, (f.metadata or {}).get(MERGE_METADATA_KEY, "replace"))
        for f in attrs.fields(cls)
    )


def _merge_fields(cls: type, base: Any, branches: list[Any]) -> Any:
    """Field-level three-way merge, built with ``dataclasses.replace`` / ``attrs.evolve``.

    Fields that are not ``__init__`` arguments are left to the class to recompute (``__post_init__``,
    defaults), as ``replace`` and ``evolve`` do.
    """
    has_base = type(base) is cls
    template = base if has_base else branches[0]
    changes: dict[str, Any] = {}
    for field in _fields(cls):
        if not field.init:
            continue
        old = getattr(base, field.name) if has_base else _MISSING
        try:
            value = _merge_field(cls, field, old, [getattr(b, field.name) for b in branches])
        except MergeConflictError as err:
            raise _at(err, field.name) from None
        if value is not getattr(template, field.name):
            changes[field.init_name] = value
    if not changes:
        return template
    if dataclasses.is_dataclass(cls):
        return dataclasses.replace(template, **changes)
    return attrs.evolve(template, **changes)


def _merge_field(cls: type, field: _Field, old: Any, values: list[Any]) -> Any:
    changed = [v for v in values if v is not old]
    if not changed:
        return old
    if len(changed) == 1:
        return changed[0]
    strategy = field.strategy
    base = None if old is _MISSING else old
    if callable(strategy):
        return strategy(base, changed)
    merge = FIELD_STRATEGIES.get(strategy) if isinstance(strategy, str) else None
    if merge is None:
        raise MergeStrategyError(
            f"{display_name(cls)}.{field.name}: unknown merge strategy {strategy!r} in the field metadata "
            f"{MERGE_METADATA_KEY!r}; use one of {', '.join(FIELD_STRATEGIES)} or a callable "
            "(base, branches) -> value"
        )
    return merge(base, changed)


def _replace(base: Any, changed: list[Any]) -> Any:
    real = [v for v in changed if not values_equal(v, base)]
    if not real:
        return base
    if all(values_equal(real[0], v) for v in real[1:]):
        return real[0]
    raise MergeConflictError(
        f"changed by several branches from {short_repr(base)} to different values: "
        f"{', '.join(short_repr(v) for v in real)} (the field's merge strategy is 'replace')"
    )


def _union(base: Any, changed: list[Any]) -> Any:
    for v in changed:
        _require_collection(v, "union")
    items: list[Any] = []
    seen: set[Any] = set()
    for source in (base or (), *changed):
        for x in source:
            if isinstance(x, Hashable):
                if x in seen:
                    continue
                seen.add(x)
            elif any(values_equal(x, y) for y in items):
                continue
            items.append(x)
    return _rebuild_collection(changed[0], items)


def _concat(base: Any, changed: list[Any]) -> Any:
    head = list(base) if base is not None else []
    items = list(head)
    for v in changed:
        _require_collection(v, "concat")
        seq = list(v)
        if len(seq) < len(head) or not all(values_equal(x, y) for x, y in zip(head, seq, strict=False)):
            raise MergeConflictError(
                f"a branch did more than append to {short_repr(base)}: it holds {short_repr(v)} (the field's "
                "merge strategy is 'concat', which combines only what each branch appended)"
            )
        items.extend(seq[len(head):])
    return _rebuild_collection(changed[0], items)


def _require_collection(value: Any, strategy: str) -> None:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise MergeStrategyError(
            f"the merge strategy {strategy!r} needs sets, lists or tuples, got {display_name(type(value))}"
        )


def _sum(base: Any, changed: list[Any]) -> Any:
    if base is None:
        return functools.reduce(operator.add, changed)
    return functools.reduce(operator.add, (v - base for v in changed), base)


FIELD_STRATEGIES: dict[str, Callable[[Any, list[Any]], Any]] = {
    "replace": _replace,
    "union": _union,
    "concat": _concat,
    "sum": _sum,
    "min": lambda base, changed: min(changed),
    "max": lambda base, changed: max(changed),
    "merge": merge_values,
}
"""Field strategy name -> ``f(base, changed)``; ``base`` is None when the value had no base."""
