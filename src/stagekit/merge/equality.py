"""Type-aware equality: how the merge decides that branches agree, never ambiguous, never a raw ``==`` of
frames. pandas and pyarrow values are compared by :mod:`stagekit.merge.frames`, column by column.

Nothing here imports pandas, numpy or pyarrow: a value can only be of such a type if its library is already
imported, so the type checks look in ``sys.modules``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence, Set
from typing import Any

import attrs

from stagekit.merge import frames

__all__ = ["values_equal"]


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
            return frames.dataframes_equal(a, b)
        equals = getattr(a, "equals", None)
        if callable(equals):  # DataFrame, Series, Index, ExtensionArray: NaN-aware, dtype-strict
            return bool(equals(b))
        return None
    if root == "pyarrow":
        return frames.arrow_equal(a, b)
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
