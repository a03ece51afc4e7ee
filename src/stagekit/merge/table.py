"""Three-way merge dispatch: each value type brings its own merge, the core only looks it up.

Where parallel branches join, the runner calls :meth:`MergeTable.merge` with the artifact's value before the
branches forked (``base``, None if absent) and each branch's value. The table resolves a merge by the values'
type MRO, most specific first, among the merges that plugins registered through the
``stagekit_register_merges`` hook (the core's own merges, in :mod:`stagekit.merge.builtin`, register the same
way). Inside a merge function, :func:`stagekit.merge_values` merges nested values (a mapping's key, a
field) through the same table.

Nothing here imports pandas, numpy or pyarrow: a value can only be of such a type if its library is already
imported, so the type checks look in ``sys.modules``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from stagekit._typedispatch import DispatchTable, type_label
from stagekit.errors import MergeConflictError, MergeError, RegistrationError, StagekitError
from stagekit.merge.describe import display_name, reprs
from stagekit.merge.equality import values_equal

__all__ = ["CURRENT_TABLE", "MergeFunction", "MergeTable", "Registration"]

MergeFunction = Callable[[Any, list[Any]], Any]
"""``merge(base, branches) -> merged``: ``branches`` holds the values of the branches that changed it."""

# the table whose merge() is running in this context; merge_values() dispatches nested values through it
CURRENT_TABLE: contextvars.ContextVar[MergeTable] = contextvars.ContextVar("stagekit_merge_table")


@attrs.frozen
class Registration:
    """One registered merge: the type it claims (a class or ``"module.QualName"``) and who registered it."""

    value_type: type | str
    merge: MergeFunction
    origin: str

    @property
    def type_label(self) -> str:
        return type_label(self.value_type)


class MergeTable(DispatchTable[Registration]):
    """Merges by value type, one per type; resolution follows the type's MRO, most specific first.

    Abstract base classes (``collections.abc.Mapping``...) apply to their virtual subclasses too: an ABC ranks
    just after the most basic class of the MRO that implements it, as ``functools.singledispatch`` does.
    A type named by a string matches a class of the MRO whose :func:`type_name` is that string. The rule is
    :class:`stagekit._typedispatch.TypeDispatch`'s, which codecs share.
    """

    kind = "merge"

    # --- registering ---------------------------------------------------------------------------------

    def add(self, value_type: type | str, merge: MergeFunction, origin: str) -> None:
        """Register ``merge`` for ``value_type``; a second claim on one type names both origins."""
        if not callable(merge):
            raise RegistrationError(f"{origin} registered a merge for {value_type!r} that is not callable")
        self._types.add(value_type, Registration(value_type, merge, origin), origin)

    def _restore(self, reg: Registration) -> None:  # a table travels to workers (executors may merge there)
        self.add(reg.value_type, reg.merge, reg.origin)

    # --- looking up ----------------------------------------------------------------------------------

    def lookup(self, value_type: type) -> Registration | None:
        """The registration that merges ``value_type``: the most specific one in its MRO (cached per type)."""
        return self._types.lookup(value_type)

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

    # --- merging -------------------------------------------------------------------------------------

    def merge(self, base: Any, branches: Sequence[Any]) -> Any:
        """Merge the branches' values of one artifact three-way against ``base``; the runner's entry point.

        Branches whose value *is* ``base`` did not change it and are dropped; if none is left the result is
        ``base``, if one is left it is that value, if all left are equal (:func:`values_equal`) it is the
        first; otherwise the merge registered for their type combines them. Raises
        :class:`~stagekit.errors.MergeConflictError` if they cannot be combined.
        """
        token = CURRENT_TABLE.set(self)
        try:
            return self._merge(base, list(branches))
        finally:
            CURRENT_TABLE.reset(token)

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
                + ", ".join(display_name(t) for t in types) + "): " + reprs(changed)
            )
        reg = self.lookup(types[0])
        if reg is None:
            raise MergeConflictError(
                f"no merge is registered for {display_name(types[0])} and the branches changed it to "
                f"different values: {reprs(changed)}"
            )
        try:
            merged = reg.merge(base, changed)
        except (StagekitError, KeyboardInterrupt):  # a conflict, or an error that already names its cause
            raise
        except BaseException as exc:  # a bug in plugin code: named, never a raw traceback
            raise MergeError(f"the merge for {reg.type_label} registered by {reg.origin} raised "
                             f"{type(exc).__name__}: {exc}", origin=reg.origin) from exc
        return merged
