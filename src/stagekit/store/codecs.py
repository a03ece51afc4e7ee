"""Codecs: how a value type is written to a file, read back, and fingerprinted.

A codec is any object with::

    name: str                           # the format it writes, stable: "stagekit.parquet-frame"
    suffix: str                         # the file name ending: ".parquet"
    write(value, path: str) -> None     # write the value to the file ``path``
    read(path: str) -> Any              # read it back
    fingerprint(value) -> str           # a content hash (hex), equal for equal values, never by pickling

and optionally ``supports(cls) -> bool``, for a codec that handles only some of the types it is found for
(the built-in catch-all for ``object`` stores only dataclasses and attrs classes). A codec that cannot store
one value of its type raises :class:`UnstorableError` saying why.

Plugins register codecs through ``stagekit_register_codecs(register)`` with ``register(value_type, codec)``;
the core's own, in :mod:`stagekit.store.builtin_codecs`, register the same way. A :class:`CodecTable` resolves
a value's codec by its type's MRO, as merges are resolved (:mod:`stagekit._typedispatch`): one registration
per type, except that a plugin's codec replaces the built-in one for the same type. Go through the table:
it makes every write atomic, names the codec and its plugin when a codec fails, and lets codecs of containers
(dataclass fields) dispatch their parts through the same table.

pickle is never used unless enabled: register :class:`PickleCodec` for the types you trust (loading a pickle
from a shared workspace runs whatever code its writer chose).
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import pickle
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

import attrs

from stagekit._typedispatch import DispatchTable, type_label, type_name
from stagekit.atomic import atomic_path
from stagekit.errors import CodecError, RegistrationError, StagekitError, UnstorableError

__all__ = [
    "BUILTIN_PLUGIN",
    "Codec",
    "CodecError",
    "CodecRegistration",
    "CodecTable",
    "PickleCodec",
    "UnstorableError",
    "current_table",
    "fingerprint",
]

BUILTIN_PLUGIN = "stagekit.codecs"
"""The plugin name of the built-in codecs: a plugin's codec for one of their types replaces theirs."""

_T = TypeVar("_T")


class Codec(Protocol):
    """What a codec provides (``supports(cls) -> bool`` is optional)."""

    name: str
    suffix: str

    def write(self, value: Any, path: str) -> None: ...

    def read(self, path: str) -> Any: ...

    def fingerprint(self, value: Any) -> str: ...


class Origin(Protocol):
    """Who registered a codec (a :class:`~stagekit.plugins.registry.Provenance`)."""

    @property
    def plugin(self) -> str: ...

    @property
    def distribution(self) -> str | None: ...


@attrs.frozen
class CodecRegistration:
    """One registered codec: the type it claims (a class or ``"module.QualName"``) and who registered it."""

    value_type: type | str
    codec: Codec
    origin: str

    @property
    def type_label(self) -> str:
        return type_label(self.value_type)


_CURRENT: contextvars.ContextVar[CodecTable] = contextvars.ContextVar("stagekit_codec_table")


def current_table() -> CodecTable | None:
    """The table whose write, read or fingerprint is running (a container's codec dispatches its parts
    through it), or None outside one."""
    return _CURRENT.get(None)


def fingerprint(value: Any, table: CodecTable) -> str | None:
    """The value's fingerprint through its codec in ``table``, or None if it cannot be stored (then it is
    not persisted and its stage is not cached; :meth:`CodecTable.fingerprint` raises the reason instead)."""
    try:
        return table.fingerprint(value)
    except UnstorableError:
        return None


class CodecTable(DispatchTable[CodecRegistration]):
    """Codecs by value type, one per type, resolved by MRO (see :mod:`stagekit._typedispatch`)."""

    kind = "codec"

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, CodecRegistration] = {}

    @classmethod
    def from_registrations(cls, codecs: Iterable[tuple[type | str, Any, Origin]]) -> CodecTable:
        """The table of ``Registry.codecs``: (value_type, codec, provenance) triples.

        A plugin's codec for a type the built-in codecs also claim replaces the built-in one (which still
        reads back the files it wrote); two plugins claiming one type is a
        :class:`~stagekit.errors.RegistrationError` naming both.
        """
        table = cls()
        found = list(codecs)
        builtin = [c for c in found if _is_builtin(c[2])]
        for value_type, codec, origin in found:
            if not _is_builtin(origin):
                table.add(value_type, codec, str(origin))
        for value_type, codec, origin in builtin:
            if table._types.claimant(value_type, str(origin)) is None:
                table.add(value_type, codec, str(origin))
            else:  # replaced: what it wrote earlier stays readable by its name
                table._names.setdefault(codec.name, CodecRegistration(value_type, codec, str(origin)))
        return table

    # --- registering ---------------------------------------------------------------------------------

    def add(self, value_type: type | str, codec: Codec, origin: str) -> None:
        """Register ``codec`` for ``value_type``; a second claim on one type names both origins."""
        missing = [a for a in ("write", "read", "fingerprint") if not callable(getattr(codec, a, None))]
        missing += [a for a in ("name", "suffix") if not isinstance(getattr(codec, a, None), str)]
        if missing:
            raise RegistrationError(
                f"{origin} registered a codec for {value_type!r} that is not a codec: it lacks "
                f"{', '.join(missing)} (see stagekit.store.codecs.Codec)")
        reg = CodecRegistration(value_type, codec, origin)
        named = self._names.get(codec.name)
        if named is not None and type(named.codec) is not type(codec):
            raise RegistrationError(
                f"two codecs are named {codec.name!r}: {type_name(type(named.codec))} registered by "
                f"{named.origin}, and {type_name(type(codec))} registered by {origin}; a codec's name says "
                "which codec reads a stored file back, so each must be unique")
        self._types.add(value_type, reg, origin)
        self._names.setdefault(codec.name, reg)

    def _restore(self, reg: CodecRegistration) -> None:  # workers may write their outputs themselves
        self.add(reg.value_type, reg.codec, reg.origin)

    # --- looking up ----------------------------------------------------------------------------------

    def lookup(self, cls: type) -> CodecRegistration | None:
        """The codec for values of ``cls``, or None (none found along its MRO, or it does not support it)."""
        reg = self._types.lookup(cls)
        if reg is None:
            return None
        check = getattr(reg.codec, "supports", None)
        return reg if check is None or check(cls) else None

    def why_not(self, cls: type) -> str | None:
        """Why values of ``cls`` cannot be stored, or None if a codec takes them (it may still refuse one
        value: a JSON codec a dict with a non-string key). What ``check`` reports before a run."""
        if self.lookup(cls) is not None:
            return None
        shown = cls.__qualname__ if cls.__module__ == "builtins" else type_name(cls)
        return (f"no codec is registered for {shown}, so it is not stored and its stage is not cached; "
                "register one through the stagekit_register_codecs hook, or, where you trust whoever writes "
                "the workspace, register stagekit.store.codecs.PickleCodec() for it (see docs/store.md)")

    def codec_for(self, value: Any) -> CodecRegistration:
        """The registration whose codec stores ``value``; :class:`UnstorableError` if there is none."""
        reg = self.lookup(type(value))
        if reg is None:
            raise UnstorableError(self.why_not(type(value)) or "", value_type=type(value))
        return reg

    def named(self, name: str) -> Codec:
        """The codec named ``name`` (as :meth:`write` returned it): the one that reads a stored file back."""
        return self._named(name).codec

    def _named(self, name: str) -> CodecRegistration:
        reg = self._names.get(name)
        if reg is None:
            known = ", ".join(sorted(self._names)) or "none"
            raise CodecError(f"no codec named {name!r} is registered (known: {known}); is the plugin that "
                             "wrote this file still installed?", codec=name)
        return reg

    # --- using ---------------------------------------------------------------------------------------

    def fingerprint(self, value: Any) -> str:
        """The value's fingerprint: its codec's, under the codec's name (two codecs never collide); raises
        :class:`UnstorableError` if it cannot be stored."""
        reg = self.codec_for(value)
        digest = self._call(reg, "fingerprint", reg.codec.fingerprint, value)
        if not isinstance(digest, str) or not digest:
            raise CodecError(f"the codec {reg.codec.name!r} registered by {reg.origin} returned "
                             f"{digest!r} as a fingerprint, not a hex string", codec=reg.codec.name,
                             origin=reg.origin)
        return hashlib.sha256(f"{reg.codec.name}\0{digest}".encode()).hexdigest()

    def write(self, value: Any, path: str | os.PathLike[str], *, fsync: bool = True,
              permissions: int = 0o444, atomic: bool = True) -> str:
        """Write ``value`` to ``path`` through its codec, atomically; returns the codec's name, for :meth:`read`.

        The codec writes a temporary file beside ``path``, which then replaces it: a reader (or a crash) sees
        the old file or the new one, never half of either. With ``fsync`` the file and the rename are made
        durable; without, a caller that syncs many files at once (``syncfs``) does it itself. The file is
        read-only (``permissions``), as the objects of the store are. ``atomic=False`` writes ``path`` itself
        (a temporary of the caller's own, renamed by it: the run store's objects).
        """
        reg = self.codec_for(value)
        if not atomic:
            self._call(reg, "write", reg.codec.write, value, os.fspath(path))
            return reg.codec.name
        with atomic_path(path, permissions=permissions, fsync=fsync, keep_suffixes=0) as tmp:
            self._call(reg, "write", reg.codec.write, value, tmp)
        return reg.codec.name

    def read(self, path: str | os.PathLike[str], codec: str) -> Any:
        """Read back the file that the codec named ``codec`` wrote."""
        reg = self._named(codec)
        return self._call(reg, "read", reg.codec.read, os.fspath(path))

    def _call(self, reg: CodecRegistration, verb: str, method: Callable[..., _T], *args: Any) -> _T:
        token = _CURRENT.set(self)
        try:
            return method(*args)
        except (StagekitError, KeyboardInterrupt, OSError):  # a refusal, a named error, a full disk...
            raise
        except BaseException as exc:  # a bug in codec code (SystemExit too): named, never a raw traceback
            raise CodecError(f"the codec {reg.codec.name!r} registered by {reg.origin} raised "
                             f"{type(exc).__name__} in {verb}: {exc}", codec=reg.codec.name,
                             origin=reg.origin) from exc
        finally:
            _CURRENT.reset(token)


def _is_builtin(origin: Origin) -> bool:
    return getattr(origin, "plugin", None) == BUILTIN_PLUGIN and getattr(origin, "distribution", None) == "stagekit"



class PickleCodec:
    """Any picklable value, by pickle (protocol 5). Never registered by default: register it for the types
    you trust, e.g. ``register("sklearn.base.BaseEstimator", PickleCodec())``.

    Reading a pickle runs code its writer chose: only where everyone who writes the workspace is trusted.
    Its fingerprint hashes the pickle (there is no other way to see an arbitrary object's content): equal
    objects may pickle differently (a cache miss, not a wrong result), and an object whose pickle drops part
    of its state (a custom ``__reduce__``) is fingerprinted by what the pickle keeps.
    """

    name = "stagekit.pickle"
    suffix = ".pickle"
    protocol = 5

    def write(self, value: Any, path: str) -> None:
        with open(path, "wb") as f:
            pickle.dump(value, f, protocol=self.protocol)

    def read(self, path: str) -> Any:
        with open(path, "rb") as f:
            return pickle.load(f)

    def fingerprint(self, value: Any) -> str:
        try:
            data = pickle.dumps(value, protocol=self.protocol)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise UnstorableError(f"{type_name(type(value))} cannot be pickled: {exc}",
                                  value_type=type(value)) from exc
        return hashlib.sha256(data).hexdigest()
