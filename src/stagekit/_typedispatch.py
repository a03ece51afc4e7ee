"""Dispatch by type: one registration per type, resolved along a class's MRO, most specific first.

Merges (:mod:`stagekit.merge.table`) and codecs (:mod:`stagekit.store.codecs`) are found the same way, by this
one rule:

- a registration claims a class, or a ``"module.QualName"`` string that names a class without importing it
  (a class and its name are the same claim: a second claim on one type is an error naming both origins);
- a value's type is resolved along its MRO, most specific first; a string matches the class of the MRO whose
  :func:`type_name` it is;
- an abstract base class (``collections.abc.Mapping``...) applies to its virtual subclasses too, ranked just
  after the most basic class of the MRO that implements it, as ``functools.singledispatch`` ranks it; two
  unrelated ABCs at one rank are ambiguous, an error naming both origins;
- resolutions are cached per type; a new registration, or an ABC gaining a virtual subclass, clears the cache.

Nothing here imports a registered type's library.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Generic, TypeVar

from stagekit.errors import RegistrationError

__all__ = ["Claim", "TypeDispatch", "type_label", "type_name"]

T = TypeVar("T")


def type_name(cls: type) -> str:
    """``"module.QualName"``: how to name a type without importing it (e.g. ``"pandas.DataFrame"``)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def type_label(value_type: type | str) -> str:
    """A registered type as messages name it: the string itself, or the class's :func:`type_name`."""
    return value_type if isinstance(value_type, str) else type_name(value_type)


class Claim(Generic[T]):
    """One registration: the type it claims, the item, and who registered it (for messages)."""

    __slots__ = ("item", "origin", "value_type")

    def __init__(self, value_type: type | str, item: T, origin: str) -> None:
        self.value_type, self.item, self.origin = value_type, item, origin

    @property
    def label(self) -> str:
        return type_label(self.value_type)


class TypeDispatch(Generic[T]):
    """Items (a merge's registration, a codec's...) by type; ``what`` names the kind of item in messages.

    Picklable: the registrations travel, the cache does not.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._by_type: dict[type, Claim[T]] = {}
        self._by_name: dict[str, Claim[T]] = {}
        self._added: list[Claim[T]] = []
        self._cache: dict[type, T | None] = {}
        self._abc_token = abc.get_cache_token()

    # --- registering ---------------------------------------------------------------------------------

    def add(self, value_type: type | str, item: T, origin: str) -> None:
        """Register ``item`` for ``value_type``; a second claim on one type names both origins."""
        clash = self.claimant(value_type, origin)
        if clash is not None:
            raise RegistrationError(
                f"two {self.what}s claim {type_label(value_type)}: one registered by {clash.origin}, "
                f"the other by {origin}; exactly one {self.what} per type is allowed"
            )
        claim = Claim(value_type, item, origin)
        if isinstance(value_type, str):
            self._by_name[value_type] = claim
        else:
            self._by_type[value_type] = claim
        self._added.append(claim)
        self._cache.clear()

    def claimant(self, value_type: type | str, origin: str = "<unknown>") -> Claim[T] | None:
        """The registration that already claims exactly ``value_type`` (by class or by name), if any.

        Raises :class:`RegistrationError` (naming ``origin``) if ``value_type`` is neither a class nor a
        ``"module.QualName"`` string.
        """
        if isinstance(value_type, str):
            _check_type_name(value_type, origin, self.what)
            return self._by_name.get(value_type) or next(
                (c for t, c in self._by_type.items() if type_name(t) == value_type), None)
        if isinstance(value_type, type):
            return self._by_type.get(value_type) or self._by_name.get(type_name(value_type))
        raise RegistrationError(
            f"{origin} registered a {self.what} for {value_type!r}, which is neither a class nor a "
            "'module.QualName' string"
        )

    def items(self) -> list[T]:
        """Every registered item, in the order they were added."""
        return [c.item for c in self._added]

    def __len__(self) -> int:
        return len(self._added)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items())

    def __getstate__(self) -> tuple[str, list[tuple[type | str, T, str]]]:
        return self.what, [(c.value_type, c.item, c.origin) for c in self._added]

    def __setstate__(self, state: tuple[str, list[tuple[type | str, T, str]]]) -> None:
        what, added = state
        self.__init__(what)  # type: ignore[misc]
        for value_type, item, origin in added:
            self.add(value_type, item, origin)

    # --- looking up ----------------------------------------------------------------------------------

    def lookup(self, cls: type) -> T | None:
        """The item registered for ``cls``: the most specific one along its MRO (cached per type)."""
        token = abc.get_cache_token()
        if token != self._abc_token:  # an ABC gained a virtual subclass since we cached
            self._cache.clear()
            self._abc_token = token
        try:
            return self._cache[cls]
        except KeyError:
            pass
        found = self._resolve(cls)
        item = None if found is None else found.item
        self._cache[cls] = item
        return item

    def _resolve(self, cls: type) -> Claim[T] | None:
        mro = cls.__mro__
        ranked: list[tuple[float, Claim[T]]] = []
        for i, klass in enumerate(mro):
            claim = self._by_type.get(klass) or self._by_name.get(type_name(klass))
            if claim is not None:
                ranked.append((i, claim))
        for key, claim in self._by_type.items():
            if key in mro or not _is_subclass(cls, key):
                continue
            # an ABC (virtual base): rank it right after the most basic class of the MRO implementing it
            last = max((i for i, klass in enumerate(mro) if _is_subclass(klass, key)), default=0)
            ranked.append((last + 0.5, claim))
        if not ranked:
            return None
        best = min(rank for rank, _ in ranked)
        tied = _most_specific([claim for rank, claim in ranked if rank == best])
        if len(tied) > 1:
            raise RegistrationError(
                f"ambiguous {self.what} for {type_name(cls)}: it is a {tied[0].label} "
                f"({self.what} registered by {tied[0].origin}) and a {tied[1].label} ({self.what} registered by "
                f"{tied[1].origin}); register a {self.what} for {type_name(cls)} itself"
            )
        return tied[0]


def _check_type_name(name: str, origin: str, what: str) -> None:
    module, _, qualname = name.rpartition(".")
    if not module or not qualname or name.startswith(".") or ".." in name:
        raise RegistrationError(
            f"{origin} registered a {what} for {name!r}: a type given by name must be 'module.QualName' "
            "(e.g. 'pandas.DataFrame', 'pyarrow.lib.Table')"
        )


def _is_subclass(cls: type, key: type) -> bool:
    try:
        return issubclass(cls, key)
    except TypeError:  # e.g. a runtime protocol with data members
        return False


def _most_specific(claims: list[Claim[T]]) -> list[Claim[T]]:
    """Drop every claim whose class is a base of another one's (ABCs tied at one rank)."""
    types = [c.value_type for c in claims]
    return [
        c for c in claims
        if not any(
            isinstance(c.value_type, type) and isinstance(t, type) and t is not c.value_type
            and _is_subclass(t, c.value_type)
            for t in types
        )
    ]


class DispatchTable(Generic[T]):
    """What the merge table and the codec table share: registrations by value type in a :class:`TypeDispatch`
    (``kind`` names them in errors), counted and listed in the order added, and pickled as the registrations
    alone (a table travels to workers; its lookup cache does not). ``_restore`` adds one back."""

    kind = "item"

    def __init__(self) -> None:
        self._types: TypeDispatch[T] = TypeDispatch(self.kind)

    def registrations(self) -> list[T]:
        """Every registration, in the order they were added."""
        return self._types.items()

    def __len__(self) -> int:
        return len(self._types)

    def __iter__(self) -> Iterator[T]:
        return iter(self.registrations())

    def __getstate__(self) -> list[T]:
        return self.registrations()

    def __setstate__(self, state: list[T]) -> None:
        self.__init__()  # type: ignore[misc]
        for reg in state:
            self._restore(reg)

    def _restore(self, reg: T) -> None:
        raise NotImplementedError
