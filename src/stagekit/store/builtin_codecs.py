"""The core's own codecs, registered through the ``stagekit_register_codecs`` hook like any plugin's.

- ``pandas.DataFrame`` and ``pandas.Series``: parquet through pyarrow; fingerprinted vectorized, by
  ``pandas.util.hash_pandas_object`` (index included) plus the schema (column names, dtypes, index).
- ``pyarrow.lib.Table``: parquet; fingerprinted by its Arrow IPC stream (schema included), hashed as written.
- ``numpy.ndarray``: ``.npy``; ``numpy.generic`` (``numpy.float64(1.5)``...) likewise, read back as a scalar.
  Object arrays are refused: ``.npy`` would need pickle.
- ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``, ``None``: JSON, when the whole value is made of
  exactly these types (a tuple or a dict subclass would come back otherwise, and is refused).
- ``tuple`` and ``stagekit.FrozenMap``: tagged JSON (:mod:`stagekit.store.struct_codec`), nested tuples,
  dicts, FrozenMaps and dataclass or attrs instances included, each read back as the type it was.
- ``object``, the catch-all: dataclasses and attrs classes, field by field through each field's own codec,
  in one zip file.

Types are registered by name and their libraries imported on first use: registering imports none of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from stagekit._typedispatch import type_name
from stagekit.errors import UnstorableError
from stagekit.hookspecs import hookimpl
from stagekit.store.codecs import BUILTIN_PLUGIN, CodecTable, current_table
from stagekit.store.frame_codecs import ArrowTableCodec, FrameCodec, SeriesCodec, exactly, sha256_of
from stagekit.store.struct_codec import StructCodec, import_class, init_name

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ArrayCodec",
    "FieldsCodec",
    "JsonCodec",
    "ScalarCodec",
    "builtin_codec_table",
    "stagekit_register_codecs",
]



@hookimpl
def stagekit_register_codecs(register: Callable[[type | str, Any], None]) -> None:
    register("pandas.DataFrame", FrameCodec())
    register("pandas.Series", SeriesCodec())
    register("pyarrow.lib.Table", ArrowTableCodec())
    register("numpy.ndarray", ArrayCodec())
    register("numpy.generic", ScalarCodec())
    json_codec = JsonCodec()
    for json_type in (dict, list, str, int, float, bool, type(None)):
        register(json_type, json_codec)
    struct = StructCodec()
    register(tuple, struct)
    register("stagekit.frozenmap.FrozenMap", struct)
    register(object, FieldsCodec())


@functools.cache
def builtin_codec_table() -> CodecTable:
    """A table of the built-in codecs only (built once per process)."""
    from stagekit._version import version
    from stagekit.plugins.registry import Provenance

    origin = Provenance(BUILTIN_PLUGIN, "stagekit", version())
    found: list[tuple[type | str, Any, Provenance]] = []
    stagekit_register_codecs(lambda value_type, codec: found.append((value_type, codec, origin)))
    return CodecTable.from_registrations(found)


# --- numpy -------------------------------------------------------------------------------------------


class ArrayCodec:
    """A numpy array as ``.npy`` (no pickle: object arrays are refused)."""

    name = "stagekit.npy"
    suffix = ".npy"

    def supports(self, cls: type) -> bool:
        return exactly(cls, "numpy.ndarray")  # a subclass (masked, matrix) would come back a plain ndarray

    def write(self, value: Any, path: str) -> None:
        import numpy as np

        array = self._array(value)
        with open(path, "wb") as f:
            np.save(f, array, allow_pickle=False)

    def read(self, path: str) -> Any:
        import numpy as np

        return np.load(path, allow_pickle=False)

    def fingerprint(self, value: Any) -> str:
        import numpy as np

        array = self._array(value)
        fortran = array.flags.f_contiguous and not array.flags.c_contiguous
        data = array.T if fortran else np.ascontiguousarray(array)  # hashed in the order .npy stores it
        descr = np.lib.format.dtype_to_descr(array.dtype)
        h = sha256_of(self.name, repr(descr), repr(array.shape), "F" if fortran else "C")
        if data.size and array.dtype.itemsize:
            h.update(data.reshape(-1).view(np.uint8).data)
        return str(h.hexdigest())

    def _array(self, value: Any) -> np.ndarray[Any, Any]:
        import numpy as np

        array = np.asarray(value)
        if array.dtype.hasobject:
            raise UnstorableError(f"an array of dtype {array.dtype} holds Python objects, which .npy stores only "
                                  "by pickle; convert it to a typed dtype (or register PickleCodec for it)",
                                  value_type=type(value))
        return array


class ScalarCodec(ArrayCodec):
    """A numpy scalar (``numpy.float64(1.5)``, ``numpy.datetime64(...)``) as a 0-d ``.npy``, read back a scalar."""

    name = "stagekit.npy-scalar"

    def supports(self, cls: type) -> bool:
        return True  # every numpy.generic

    def read(self, path: str) -> Any:
        return super().read(path)[()]


# --- JSON --------------------------------------------------------------------------------------------

_JSON_SCALARS = (str, int, float, bool, type(None))
_WOULD_COME_BACK: dict[type, str] = {tuple: "a list", set: "nothing: JSON has no sets",
                                     frozenset: "nothing: JSON has no sets"}


class JsonCodec:
    """Values made only of dict (with str keys), list, str, int, float, bool and None, as UTF-8 JSON.

    Key order is kept and fingerprinted (a reader may iterate it); NaN and infinities are written as Python's
    json module writes them.
    """

    name = "stagekit.json"
    suffix = ".json"

    def supports(self, cls: type) -> bool:
        return cls in _JSON_SCALARS or cls in (dict, list)  # a subclass would come back as its base

    def write(self, value: Any, path: str) -> None:
        with open(path, "wb") as f:
            f.write(_dumps(value))

    def read(self, path: str) -> Any:
        with open(path, "rb") as f:
            return json.loads(f.read())

    def fingerprint(self, value: Any) -> str:
        h = sha256_of("json")
        h.update(_dumps(value))
        return str(h.hexdigest())


def _dumps(value: Any) -> bytes:
    _check_json(value, [])
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode()


def _check_json(value: Any, path: list[Any]) -> None:
    kind = type(value)
    if kind in _JSON_SCALARS:
        return
    if kind is list:
        for i, item in enumerate(value):
            _check_json(item, [*path, i])
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise _not_json(f"has the key {key!r} ({type(key).__name__}); JSON keys are strings", path)
            _check_json(item, [*path, key])
        return
    would = _WOULD_COME_BACK.get(kind)
    reason = f"would come back as {would}" if would else "is not made of dict, list, str, int, float, bool, None"
    shown = kind.__qualname__ if kind.__module__ == "builtins" else type_name(kind)
    raise _not_json(f"holds a {shown}, which {reason}", path)


def _not_json(reason: str, path: list[Any]) -> UnstorableError:
    where = "".join(f"[{p!r}]" for p in path)
    return UnstorableError(f"not storable as JSON: the value{where} {reason}")


# --- dataclasses and attrs classes -------------------------------------------------------------------


class FieldsCodec:
    """A dataclass or attrs instance, field by field through each field's own codec, in one zip file.

    The zip holds ``fields.json`` (the class as ``"module:QualName"``, each field's codec and member) and one
    member per field. Reading imports the class by name and calls it with the fields: it must be importable
    (not defined inside a function) and take every field in ``__init__``.
    """

    name = "stagekit.fields"
    suffix = ".zip"
    _MANIFEST = "fields.json"

    def supports(self, cls: type) -> bool:
        return dataclasses.is_dataclass(cls) or attrs.has(cls)

    def write(self, value: Any, path: str) -> None:
        table, cls = _table(), type(value)
        manifest: dict[str, Any] = {"class": _class_ref(cls), "fields": []}
        with tempfile.TemporaryDirectory(prefix=".fields-", dir=os.path.dirname(os.path.abspath(path))) as tmp, \
                zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for i, (name, item) in enumerate(_fields(value).items()):
                with _in_field(cls, name):
                    member = f"{i}{table.codec_for(item).codec.suffix}"
                    codec = table.write(item, os.path.join(tmp, member), fsync=False, permissions=0o600)
                zf.write(os.path.join(tmp, member), member)
                manifest["fields"].append({"name": name, "codec": codec, "member": member})
            zf.writestr(self._MANIFEST, json.dumps(manifest, indent=1))

    def read(self, path: str) -> Any:
        table = _table()
        with zipfile.ZipFile(path) as zf, tempfile.TemporaryDirectory(
                prefix=".fields-", dir=os.path.dirname(os.path.abspath(path))) as tmp:
            manifest = json.loads(zf.read(self._MANIFEST))
            cls = import_class(manifest["class"], self.name)
            values = {f["name"]: table.read(zf.extract(f["member"], tmp), f["codec"]) for f in manifest["fields"]}
        return cls(**{init_name(cls, name): v for name, v in values.items()})

    def fingerprint(self, value: Any) -> str:
        table, cls = _table(), type(value)
        parts = []
        for name, item in _fields(value).items():
            with _in_field(cls, name):
                parts.append([name, table.fingerprint(item)])
        return str(sha256_of(self.name, _class_ref(cls), json.dumps(parts)).hexdigest())


def _table() -> CodecTable:
    return current_table() or builtin_codec_table()


@contextlib.contextmanager
def _in_field(cls: type, name: str) -> Iterator[None]:
    """A field's refusal names the field and its class."""
    try:
        yield
    except UnstorableError as exc:
        raise UnstorableError(f"field {name!r} of {type_name(cls)}: {exc.reason}", value_type=cls) from exc


def _fields(value: Any) -> dict[str, Any]:
    """The instance's fields by name; refuses a class whose fields cannot all be passed to ``__init__``."""
    cls = type(value)
    if attrs.has(cls):
        found = [(a.name, a.init) for a in attrs.fields(cls)]
    else:
        found = [(f.name, f.init) for f in dataclasses.fields(value)]
    skipped = [name for name, init in found if not init]
    if skipped:
        raise UnstorableError(f"{type_name(cls)} has field(s) {', '.join(map(repr, skipped))} that __init__ does "
                              "not take, so it cannot be rebuilt from its fields", value_type=cls)
    return {name: getattr(value, name) for name, _ in found}


def _class_ref(cls: type) -> str:
    if "<locals>" in cls.__qualname__:
        raise UnstorableError(f"{type_name(cls)} is defined inside a function, so it cannot be imported back by "
                              "name; define it at module level", value_type=cls)
    return f"{cls.__module__}:{cls.__qualname__}"
