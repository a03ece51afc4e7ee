"""A codec for plain nested structures that JSON alone would not bring back: tuples and ``FrozenMap`` (the
frozen values stages pass between branches), holding JSON scalars, lists, dicts (any keys), tuples,
FrozenMaps, and dataclass or attrs instances made of the same — a selection's audit log, say.

Written as JSON with every container but a list tagged, so each comes back as the type it was::

    (1, "a")              -> {"$tuple": [1, "a"]}
    FrozenMap({"x": 1.0}) -> {"$frozenmap": [["x", 1.0]]}
    {"k": 1}              -> {"$dict": [["k", 1]]}
    Entry(stage="s")      -> {"$class": "pkg.mod:Entry", "$fields": [["stage", "s"]]}

Its fingerprint is the SHA-256 of those bytes. A class is imported by name when read (it must be importable
and take every field in ``__init__``); anything else in the structure is refused with where it is.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import attrs

from stagekit._typedispatch import type_name
from stagekit.errors import CodecError, UnstorableError
from stagekit.frozenmap import FrozenMap
from stagekit.store.frame_codecs import sha256_of

__all__ = ["StructCodec", "import_class", "init_name"]

_SCALARS = (str, int, float, bool, type(None))


class StructCodec:
    """Tuples and FrozenMaps of plain values (see the module's docstring), as tagged JSON."""

    name = "stagekit.struct"
    suffix = ".json"

    def supports(self, cls: type) -> bool:
        return cls is tuple or cls is FrozenMap

    def write(self, value: Any, path: str) -> None:
        with open(path, "wb") as f:
            f.write(_dumps(value))

    def read(self, path: str) -> Any:
        with open(path, "rb") as f:
            return _decode(json.loads(f.read()))

    def fingerprint(self, value: Any) -> str:
        h = sha256_of(self.name)
        h.update(_dumps(value))
        return str(h.hexdigest())


def _dumps(value: Any) -> bytes:
    return json.dumps(_encode(value, "value"), ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode()


def _encode(value: Any, where: str) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list:
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is tuple:
        return {"$tuple": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if kind is dict or kind is FrozenMap:
        tag = "$dict" if kind is dict else "$frozenmap"
        return {tag: [[_encode(k, f"{where} key"), _encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    if attrs.has(kind) or dataclasses.is_dataclass(kind):
        return {"$class": _class_ref(kind, where), "$fields": [[n, _encode(v, f"{where}.{n}")]
                                                              for n, v in _fields(value, where).items()]}
    raise UnstorableError(f"{where} is a {type_name(kind)}, which the struct codec does not store (it takes "
                          "JSON scalars, lists, tuples, dicts, FrozenMaps and dataclass or attrs instances of "
                          "those)", value_type=kind)


def _decode(data: Any) -> Any:
    if isinstance(data, list):
        return [_decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "$tuple" in data:
        return tuple(_decode(v) for v in data["$tuple"])
    if "$dict" in data:
        return {_decode(k): _decode(v) for k, v in data["$dict"]}
    if "$frozenmap" in data:
        return FrozenMap((_decode(k), _decode(v)) for k, v in data["$frozenmap"])
    cls = import_class(data["$class"], StructCodec.name)
    return cls(**{init_name(cls, n): _decode(v) for n, v in data["$fields"]})


def _class_ref(cls: type, where: str) -> str:
    if "<locals>" in cls.__qualname__:
        raise UnstorableError(f"{where} is a {type_name(cls)}, defined inside a function: it cannot be imported "
                              "back by name", value_type=cls)
    return f"{cls.__module__}:{cls.__qualname__}"


def _fields(value: Any, where: str) -> dict[str, Any]:
    cls = type(value)
    found = [(a.name, a.init) for a in attrs.fields(cls)] if attrs.has(cls) else \
        [(f.name, f.init) for f in dataclasses.fields(value)]
    if not all(init for _, init in found):
        raise UnstorableError(f"{where} ({type_name(cls)}) has fields __init__ does not take", value_type=cls)
    return {name: getattr(value, name) for name, _ in found}


def init_name(cls: type, name: str) -> str:
    """The ``__init__`` argument of an attrs field (its alias) or a dataclass field."""
    if attrs.has(cls):
        alias = attrs.fields_dict(cls)[name].alias
        return alias if isinstance(alias, str) else name
    return name


def import_class(ref: str, codec: str) -> type:
    """The dataclass or attrs class that ``"module:QualName"`` names (for ``codec``, which stored it)."""
    from stagekit.stage import resolve_reference

    found = resolve_reference(ref)
    if not isinstance(found, type) or not (dataclasses.is_dataclass(found) or attrs.has(found)):
        raise CodecError(f"the stored fields are of {ref}, which is no longer a dataclass or attrs class",
                         codec=codec)
    return found
