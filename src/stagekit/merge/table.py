"""Three-way merge dispatch: each value type brings its own merge, the core only looks it up.

Where parallel branches join, the runner calls :meth:`MergeTable.merge` with the artifact's value before the
branches forked (``base``, None if absent) and each branch's value. The table resolves a merge by the values'
type MRO, most specific first, among the merges that plugins registered through the
``stagekit_register_merges`` hook (the core's own merges, in :mod:`stagekit.merge.builtin`, register the same
way). Inside a merge function, :func:`merge_values` merges nested values (a mapping's key, a field)
through the same table.

Nothing here imports pandas, numpy or pyarrow: a value can only be of such a type if its library is already
imported, so the type checks look in ``sys.modules``.
"""

from __future__ import annotations

import abc
import contextvars
import dataclasses
import functools
import math
import reprlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from typing import Any

import attrs

from stagekit.errors import MergeConflictError, RegistrationError

__all__ = [
    "MergeFunction",
    "MergeTable",
    "Registration",
    "display_name",
    "merge_values",
    "short_repr",
    "type_name",
    "values_equal",
]

MergeFunction = Callable[[Any, list[Any]], Any]
"""``merge(base, branches) -> merged``: ``branches`` holds the values of the branches that changed it."""

# the table whose merge() is running in this context; merge_values() dispatches through it
_CURRENT: contextvars.ContextVar[MergeTable] = contextvars.ContextVar("stagekit_merge_table")

_ORIGIN_BUILTIN = "stagekit (built-in merges)"


def type_name(cls: type) -> str:
    """``"module.QualName"``: how to name a type without importing it (e.g. ``"pandas.DataFrame"``)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def display_name(cls: type) -> str:
    """A type's name for messages: ``int`` for builtins, else :func:`type_name`."""
    return cls.__qualname__ if cls.__module__ == "builtins" else type_name(cls)


@attrs.frozen
class Registration:
    """One registered merge: the type it claims (a class or ``"module.QualName"``) and who registered it."""

    value_type: type | str
    merge: MergeFunction
    origin: str

    @property
    def type_label(self) -> str:
        return self.value_type if isinstance(self.value_type, str) else type_name(self.value_type)


class MergeTable:
    """Merges by value type, one per type; resolution follows the type's MRO, most specific first.

    Abstract base classes (``collections.abc.Mapping``...) apply to their virtual subclasses too: an ABC ranks
    just after the most basic class of the MRO that implements it, as ``functools.singledispatch`` does.
    A type named by a string matches a class of the MRO whose :func:`type_name` is that string.
    """

    def __init__(self) -> None:
        self._by_type: dict[type, Registration] = {}
        self._by_name: dict[str, Registration] = {}
        self._added: list[Registration] = []
        self._cache: dict[type, Registration | None] = {}
        self._abc_token = abc.get_cache_token()

    @classmethod
    def with_builtins(cls) -> MergeTable:
        """A table of the core's merges only (mapping, set, DataFrame, Arrow Table, dataclass/attrs...)."""
        from stagekit.merge import builtin as merges_builtin

        table = cls()
        merges_builtin.stagekit_register_merges(
            lambda value_type, merge: table.add(value_type, merge, _ORIGIN_BUILTIN)
        )
        return table

    # --- registering ---------------------------------------------------------------------------------

    def add(self, value_type: type | str, merge: MergeFunction, origin: str) -> None:
        """Register ``merge`` for ``value_type``; a second claim on one type names both origins."""
        if not callable(merge):
            raise RegistrationError(f"{origin} registered a merge for {value_type!r} that is not callable")
        reg = Registration(value_type, merge, origin)
        if isinstance(value_type, str):
            _check_type_name(value_type, origin)
            clash = self._by_name.get(value_type) or next(
                (r for t, r in self._by_type.items() if type_name(t) == value_type), None
            )
        elif isinstance(value_type, type):
            clash = self._by_type.get(value_type) or self._by_name.get(type_name(value_type))
        else:
            raise RegistrationError(
                f"{origin} registered a merge for {value_type!r}, which is neither a class nor a "
                "'module.QualName' string"
            )
        if clash is not None:
            raise RegistrationError(
                f"two merges claim {reg.type_label}: one registered by {clash.origin}, "
                f"the other by {origin}; exactly one merge per type is allowed"
            )
        if isinstance(value_type, str):
            self._by_name[value_type] = reg
        else:
            self._by_type[value_type] = reg
        self._added.append(reg)
        self._cache.clear()

    def __getstate__(self) -> list[Registration]:
        # a table travels to remote workers (executors may merge there): registrations only, no cache
        return list(self._added)

    def __setstate__(self, state: list[Registration]) -> None:
        self.__init__()  # type: ignore[misc]
        for reg in state:
            self.add(reg.value_type, reg.merge, reg.origin)

    def registrations(self) -> list[Registration]:
        """Every registration, in the order they were added."""
        return list(self._added)

    def __len__(self) -> int:
        return len(self._added)

    def __iter__(self) -> Iterator[Registration]:
        return iter(self.registrations())

    # --- looking up ----------------------------------------------------------------------------------

    def lookup(self, value_type: type) -> Registration | None:
        """The registration that merges ``value_type``: the most specific one in its MRO (cached per type)."""
        token = abc.get_cache_token()
        if token != self._abc_token:  # an ABC gained a virtual subclass since we cached
            self._cache.clear()
            self._abc_token = token
        try:
            return self._cache[value_type]
        except KeyError:
            pass
        reg = self._resolve(value_type)
        self._cache[value_type] = reg
        return reg

    def find(self, value_type: type) -> MergeFunction | None:
        """The merge function for ``value_type``, or None."""
        reg = self.lookup(value_type)
        return None if reg is None else reg.merge

    def supports(self, value_type: type) -> bool:
        """Whether values of ``value_type`` changed by two branches can be merged at all.

        A merge may carry a ``supports(cls) -> bool`` attribute when it handles only some of the types it
        is found for (the built-in catch-all for ``object`` does: dataclasses, attrs classes and classes
        with a ``__stagekit_merge__`` method).
        """
        reg = self.lookup(value_type)
        if reg is None:
            return False
        check = getattr(reg.merge, "supports", None)
        return True if check is None else bool(check(value_type))

    def _resolve(self, cls: type) -> Registration | None:
        mro = cls.__mro__
        ranked: list[tuple[float, Registration]] = []
        for i, klass in enumerate(mro):
            reg = self._by_type.get(klass) or self._by_name.get(type_name(klass))
            if reg is not None:
                ranked.append((i, reg))
        for key, reg in self._by_type.items():
            if key in mro or not _is_subclass(cls, key):
                continue
            # an ABC (virtual base): rank it right after the most basic class of the MRO implementing it
            last = max((i for i, klass in enumerate(mro) if _is_subclass(klass, key)), default=0)
            ranked.append((last + 0.5, reg))
        if not ranked:
            return None
        best = min(rank for rank, _ in ranked)
        tied = _most_specific([reg for rank, reg in ranked if rank == best])
        if len(tied) > 1:
            raise RegistrationError(
                f"ambiguous merge for {type_name(cls)}: it is a {tied[0].type_label} "
                f"(merge registered by {tied[0].origin}) and a {tied[1].type_label} (merge registered by "
                f"{tied[1].origin}); register a merge for {type_name(cls)} itself"
            )
        return tied[0]

    # --- merging -------------------------------------------------------------------------------------

    def merge(self, base: Any, branches: Sequence[Any]) -> Any:
        """Merge the branches' values of one artifact three-way against ``base``; the runner's entry point.

        Branches whose value *is* ``base`` did not change it and are dropped; if none is left the result is
        ``base``, if one is left it is that value, if all left are equal (:func:`values_equal`) it is the
        first; otherwise the merge registered for their type combines them. Raises
        :class:`~stagekit.errors.MergeConflictError` if they cannot be combined.
        """
        token = _CURRENT.set(self)
        try:
            return self._merge(base, list(branches))
        finally:
            _CURRENT.reset(token)

    def _merge(self, base: Any, branches: list[Any]) -> Any:
        changed = [b for b in branches if b is not base]
        if not changed:
            return base
        first = changed[0]
        if len(changed) == 1 or all(values_equal(first, v) for v in changed[1:]):
            return first
        types = list(dict.fromkeys(type(v) for v in changed))
        if len(types) > 1:
            raise MergeConflictError(
                "the branches changed it to values of different types ("
                + ", ".join(display_name(t) for t in types) + "): " + _reprs(changed)
            )
        reg = self.lookup(types[0])
        if reg is None:
            raise MergeConflictError(
                f"no merge is registered for {display_name(types[0])} and the branches changed it to "
                f"different values: {_reprs(changed)}"
            )
        try:
            return reg.merge(base, changed)
        except MergeConflictError:
            raise
        except Exception as exc:
            exc.add_note(f"in the merge for {reg.type_label} registered by {reg.origin}")
            raise


def merge_values(base: Any, branches: Sequence[Any]) -> Any:
    """Merge nested values from inside a merge function, through the table of the merge that is running.

    Use it for recursion: a mapping's key or an object's field changed by several branches is merged by its
    own value's merge. Outside a running merge it falls back to a table of the built-in merges only.
    """
    table = _CURRENT.get(None)
    return (_builtin_table() if table is None else table).merge(base, branches)


@functools.cache
def _builtin_table() -> MergeTable:
    return MergeTable.with_builtins()


def _check_type_name(name: str, origin: str) -> None:
    module, _, qualname = name.rpartition(".")
    if not module or not qualname or name.startswith(".") or ".." in name:
        raise RegistrationError(
            f"{origin} registered a merge for {name!r}: a type given by name must be 'module.QualName' "
            "(e.g. 'pandas.DataFrame', 'pyarrow.lib.Table')"
        )


def _is_subclass(cls: type, key: type) -> bool:
    try:
        return issubclass(cls, key)
    except TypeError:  # e.g. a runtime protocol with data members
        return False


def _most_specific(regs: list[Registration]) -> list[Registration]:
    """Drop every registration whose class is a base of another one's (ABCs tied at one rank)."""
    types = [r.value_type for r in regs]
    return [
        r for r in regs
        if not any(
            isinstance(r.value_type, type) and isinstance(t, type) and t is not r.value_type
            and _is_subclass(t, r.value_type)
            for t in types
        )
    ]


# --- type-aware equality -----------------------------------------------------------------------------

_SCALARS = (int, str, bytes, bool, type(None), complex)


def values_equal(a: Any, b: Any) -> bool:
    """Whether two values are equal, type-aware and never ambiguous.

    Identical objects are equal; values of different types are not. DataFrames, Series and Indexes compare
    with ``.equals``, numpy arrays with ``array_equal`` (same dtype and shape; NaN equals NaN), Arrow
    tables and arrays with ``.equals`` (NaN equals NaN), mappings, sequences, dataclasses and attrs
    instances element by element. Anything else compares with ``==``; a result that is not a plain truth
    value counts as "not equal".
    """
    if a is b:
        return True
    ta = type(a)
    if ta is not type(b):
        return False
    if ta in _SCALARS:
        return bool(a == b)
    if ta is float:
        return a == b or (math.isnan(a) and math.isnan(b))
    special = _library_equal(a, b)
    if special is not None:
        return special
    if isinstance(a, Mapping):
        return len(a) == len(b) and all(k in b and values_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, Set):
        return bool(a == b)
    if isinstance(a, Sequence) and not isinstance(a, (str, bytes, bytearray)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    fields = _field_names(ta)
    if fields is not None:
        return all(values_equal(getattr(a, f), getattr(b, f)) for f in fields)
    return _plain_equal(a, b)


def _plain_equal(a: Any, b: Any) -> bool:
    try:
        result = a == b
    except Exception:
        return False
    if isinstance(result, bool):
        return result
    np = sys.modules.get("numpy")
    if np is not None and isinstance(result, np.bool_):
        return bool(result)
    return False  # an array-like or otherwise undecidable answer: treat as different


def _field_names(cls: type) -> list[str] | None:
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls) if f.compare]
    if attrs.has(cls):
        return [f.name for f in attrs.fields(cls) if f.eq]
    return None


def _library_equal(a: Any, b: Any) -> bool | None:
    """Equality for numpy, pandas and pyarrow values; None if ``a`` is none of those."""
    root = type(a).__module__.partition(".")[0]
    if root == "numpy":
        return _numpy_equal(a, b)
    if root == "pandas":
        if type(a).__name__ == "DataFrame":
            from stagekit.merge.frames import dataframes_equal  # column by column, memory first

            return dataframes_equal(a, b)
        equals = getattr(a, "equals", None)
        if callable(equals):  # DataFrame, Series, Index, ExtensionArray: NaN-aware, dtype-strict
            return bool(equals(b))
        return None
    if root == "pyarrow":
        return arrow_equal(a, b)
    return None


def _numpy_equal(a: Any, b: Any) -> bool | None:
    np = sys.modules["numpy"]
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.kind == "O":
            return all(values_equal(x, y) for x, y in zip(a.ravel(), b.ravel(), strict=True))
        try:
            return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fcmM"))
        except TypeError:
            return bool(np.array_equal(a, b))
    if isinstance(a, np.generic):
        if a.dtype != b.dtype:
            return False
        if a.dtype.kind in "fcmM" and np.isnan(a) and np.isnan(b):
            return True
        return bool(a == b)
    return None


def arrow_equal(a: Any, b: Any) -> bool | None:
    """Equality of pyarrow values (``.equals``), counting NaN equal to NaN in floating columns."""
    equals = getattr(a, "equals", None)
    if not callable(equals):
        return None
    if equals(b):
        return True
    pa = sys.modules["pyarrow"]
    if isinstance(a, (pa.Table, pa.RecordBatch)):
        if not a.schema.equals(b.schema) or a.num_rows != b.num_rows:
            return False
        return all(arrow_equal(x, y) for x, y in zip(a.columns, b.columns, strict=True))
    if isinstance(a, (pa.Array, pa.ChunkedArray)) and pa.types.is_floating(a.type) and a.type == b.type:
        if len(a) != len(b) or a.null_count != b.null_count:
            return False
        np = sys.modules.get("numpy") or __import__("numpy")
        if not a.is_null().equals(b.is_null()):
            return False
        xa = a.fill_null(0).to_numpy(zero_copy_only=False)
        xb = b.fill_null(0).to_numpy(zero_copy_only=False)
        return bool(np.array_equal(xa, xb, equal_nan=True))
    return False


# --- short reprs for messages --------------------------------------------------------------------------

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 40, 60
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = 4


def short_repr(value: Any, limit: int = 80) -> str:
    """A one-line repr of at most ``limit`` characters; arrays and frames are summarized, never printed."""
    try:
        text = _summary(value) or _REPR.repr(value)
    except Exception as exc:  # a broken __repr__ must not hide the conflict
        text = f"<{type_name(type(value))} (repr failed: {type(exc).__name__})>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _summary(value: Any) -> str | None:
    root = type(value).__module__.partition(".")[0]
    name = type(value).__name__
    if root not in ("pandas", "numpy", "pyarrow"):
        return None
    if name == "DataFrame":
        return f"DataFrame({len(value)} rows, columns {_head(list(value.columns))})"
    if name in ("Table", "RecordBatch"):
        return f"{name}({value.num_rows} rows, columns {_head(value.column_names)})"
    if name == "Series":
        return f"Series({value.name!r}, {value.dtype}, {len(value)} rows: {_head(value.iloc[:4].tolist())})"
    if name == "ndarray":
        return f"ndarray({value.shape}, {value.dtype}: {_head(value.ravel()[:4].tolist())})"
    if root == "pyarrow" and hasattr(value, "to_pylist") and hasattr(value, "slice"):  # Array, ChunkedArray
        return f"{name}({value.type}, {len(value)} rows: {_head(value.slice(0, 4).to_pylist())})"
    return None


def _head(items: list[Any], n: int = 3) -> str:
    """The first ``n`` items, and "..." if there are more (callers pass ``n + 1`` items to tell)."""
    shown = ", ".join(_REPR.repr(x) for x in items[:n])
    return f"[{shown}{', ...' if len(items) > n else ''}]"


def _reprs(values: Sequence[Any]) -> str:
    return ", ".join(short_repr(v) for v in values)
