"""Stage fingerprints: what decides whether a stored stage run can be reused, and why a stage runs again.

A stage's fingerprint combines

- its code: the source of its function (``inspect.getsource``'s lines, read from ``linecache``; without a
  source file, the qualified name and the compiled code), the distribution and version that ship it (from the
  plugin's provenance), and the ``version`` its author bumps to say "my results changed";
- its params, each fingerprinted through its codec (canonical JSON where none takes it);
- its contracts (the schema's text, or the lazy ``"module:attr"`` string) and the contract mode;
- the fingerprints of its inputs (:func:`stagekit.store.codecs.fingerprint`), and the names it provides.

:func:`stage_record` keeps these parts (a :class:`StageFingerprint`, stored as JSON beside the stage run), so
that :func:`reason` can say what changed: "code changed", "param top_n 20 → 30", "input 'prices' changed",
"no earlier run". A stage with an input or a param that cannot be fingerprinted cannot be reused: its record
says why (``uncacheable``) and its digest is None.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import linecache
import os
import re
import stat
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from stagekit.errors import UnstorableError
from stagekit.merge.describe import short_repr
from stagekit.store.codecs import CodecTable

if TYPE_CHECKING:
    from stagekit.plugins.registry import Provenance
    from stagekit.stage import Stage

__all__ = ["FORMAT", "StageFingerprint", "code_digest", "code_text", "path_state", "reason", "schema_text",
           "stage_fingerprint", "stage_record", "value_fingerprint"]

FORMAT = 1
"""The fingerprint recipe's version: records of another format never match (and :func:`reason` says why)."""

_FROM_STAGE: Any = object()  # version=: read it from the stage (``Stage.version``)
_UNSET: Any = object()  # state=: not given, worked out here
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


@attrs.frozen
class StageFingerprint:
    """The parts of one stage's fingerprint; :attr:`digest` is their hash (None if it cannot be cached)."""

    stage: str
    code: str  # sha256 of the code's text
    distribution: str | None
    distribution_version: str | None
    version: str | None
    params: Mapping[str, str]  # name -> fingerprint
    contracts: Mapping[str, str]  # "input prices" / "output features" -> sha256 of the schema's text
    contract_mode: str
    inputs: Mapping[str, str]  # artifact -> fingerprint
    provides: tuple[str, ...]
    shown: Mapping[str, str] = attrs.field(factory=dict)  # param -> a short repr, for messages only
    uncacheable: str | None = None  # why it cannot be reused (an input or a param without a fingerprint)
    format: int = FORMAT

    @functools.cached_property
    def digest(self) -> str | None:
        """The fingerprint: equal digests, same code, params, contracts and inputs."""
        if self.uncacheable is not None:
            return None
        parts = [self.format, self.stage, self.code, self.distribution, self.distribution_version, self.version,
                 dict(self.params), dict(self.contracts), self.contract_mode, dict(self.inputs), list(self.provides)]
        return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-able data (for the run database); :meth:`from_dict` reads it back."""
        return {"stage": self.stage, "code": self.code, "distribution": self.distribution,
                "distribution_version": self.distribution_version, "version": self.version,
                "params": dict(self.params), "contracts": dict(self.contracts), "contract_mode": self.contract_mode,
                "inputs": dict(self.inputs), "provides": list(self.provides), "shown": dict(self.shown),
                "uncacheable": self.uncacheable, "format": self.format}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageFingerprint:
        known = {a.name for a in attrs.fields(cls)}
        fields = {k: v for k, v in data.items() if k in known}
        fields["provides"] = tuple(fields.get("provides", ()))
        return cls(**fields)


def stage_fingerprint(stage: Stage, provenance: Provenance | None, params: Mapping[str, Any],
                      input_fingerprints: Mapping[str, str | None], contract_mode: str, *,
                      version: str | int | None = _FROM_STAGE, table: CodecTable | None = None) -> str | None:
    """The stage's fingerprint (hex), or None if it cannot be cached; see :func:`stage_record`."""
    return stage_record(stage, provenance, params, input_fingerprints, contract_mode, version=version,
                        table=table).digest


def stage_record(stage: Stage, provenance: Provenance | None, params: Mapping[str, Any],
                 input_fingerprints: Mapping[str, str | None], contract_mode: str, *,
                 version: str | int | None = _FROM_STAGE, table: CodecTable | None = None,
                 code: str | None = None) -> StageFingerprint:
    """The parts of the stage's fingerprint.

    ``provenance`` is who registered the stage (its distribution and version count; None for a stage defined
    in code), ``params`` the values the stage runs with, ``input_fingerprints`` its inputs' fingerprints by
    artifact (None for one that has no codec), ``contract_mode`` the mode its contracts run in. ``version``
    defaults to the stage's own ``version``. Params go through ``table`` (default: the built-in codecs).
    ``code`` is :func:`code_digest` of the stage's function, when the caller has it already.
    """
    if table is None:
        from stagekit.store.builtin_codecs import builtin_codec_table

        table = builtin_codec_table()
    why: list[str] = []
    param_fps: dict[str, str] = {}
    for name, value in params.items():
        try:
            param_fps[name] = _param_fingerprint(value, table)
        except UnstorableError as exc:
            why.append(f"param {name!r} cannot be fingerprinted: {exc.reason}")
    inputs: dict[str, str] = {}
    for name in dict.fromkeys([*stage.requires, *input_fingerprints]):
        found = input_fingerprints.get(name)
        if found is None:
            why.append(f"input {name!r} has no fingerprint (no codec stores its value)")
        else:
            inputs[name] = found
    if version is _FROM_STAGE:
        version = getattr(stage, "version", None)
    return StageFingerprint(
        stage=stage.name, code=code if code is not None else code_digest(stage.callable),
        distribution=getattr(provenance, "distribution", None),
        distribution_version=getattr(provenance, "version", None),
        version=None if version is None else str(version), params=param_fps, contracts=_contracts(stage),
        contract_mode=str(contract_mode), inputs=inputs, provides=tuple(stage.provides),
        shown={name: short_repr(value, 40) for name, value in params.items()},
        uncacheable="; ".join(why) or None,
    )


def value_fingerprint(value: Any, table: CodecTable, state: str | Any | None = _UNSET) -> str:
    """An artifact's fingerprint: its codec's; for a path (an absolute ``str`` or ``os.PathLike`` naming a file
    or directory that exists) also the state of what it names (:func:`path_state`), so that a stage reading
    files runs again when they change (``state``: that state, when the caller has it already).
    :class:`UnstorableError` if no codec takes the value."""
    found = table.fingerprint(value)
    if state is _UNSET:
        state = path_state(value)
    return found if state is None else _sha256(f"{found}\0path\0{state}")


def path_state(value: Any) -> str | None:
    """For an absolute path that exists, a digest of what it names: each file's relative path, size and
    modification time (in ns), the tree walked in order (a ``.stagekit`` state folder left out); None for any
    other value. Cheap (stats, no reads),
    like ``make``: a file rewritten with other bytes in the same nanosecond and size goes unseen."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.startswith("/") or "\n" in value or len(value) > 4096:
        return None
    try:
        st = os.stat(value)
    except (OSError, ValueError):
        return None
    h = hashlib.sha256()
    if not stat.S_ISDIR(st.st_mode):
        h.update(f"file {st.st_size} {st.st_mtime_ns}".encode())
        return h.hexdigest()
    for folder, dirs, files in os.walk(value):
        dirs[:] = sorted(d for d in dirs if d != ".stagekit")  # a workspace's own state is nobody's input
        rel = os.path.relpath(folder, value)
        for name in sorted(files):
            try:
                fst = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            h.update(f"{rel}/{name}\0{fst.st_size} {fst.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def reason(previous: StageFingerprint | None, current: StageFingerprint) -> str:
    """Why the stage must run again, in a few words; "unchanged" if it need not."""
    if previous is None:
        return "no earlier run"
    if current.uncacheable is not None:
        return f"not cached: {current.uncacheable}"
    if previous.uncacheable is not None:
        return f"the earlier run was not cached: {previous.uncacheable}"
    if previous.format != current.format:
        return f"the fingerprint format changed ({previous.format} → {current.format})"
    found: list[str] = []
    if previous.code != current.code:
        found.append("code changed")
    if (previous.distribution, previous.distribution_version) != (current.distribution,
                                                                 current.distribution_version):
        found.append(f"{_dist(previous)} → {_dist(current)}")
    if previous.version != current.version:
        found.append(f"version {previous.version} → {current.version}")
    found += _changed("param", previous.params, current.params,
                      lambda n: f"{previous.shown.get(n, '?')} → {current.shown.get(n, '?')}")
    if previous.contract_mode != current.contract_mode:
        found.append(f"contract mode {previous.contract_mode} → {current.contract_mode}")
    found += _changed("contract on", previous.contracts, current.contracts, lambda n: "changed")
    found += _changed("input", previous.inputs, current.inputs, lambda n: "changed", quote=True)
    if previous.provides != current.provides:
        found.append(f"provides {list(previous.provides)} → {list(current.provides)}")
    if previous.stage != current.stage:
        found.append(f"renamed from {previous.stage!r}")
    return "; ".join(found) or "unchanged"


def _changed(what: str, before: Mapping[str, str], after: Mapping[str, str], how: Callable[[str], str],
             quote: bool = False) -> list[str]:
    found = []
    for name in dict.fromkeys([*before, *after]):
        shown = repr(name) if quote else name
        if name not in before:
            found.append(f"{what} {shown} added")
        elif name not in after:
            found.append(f"{what} {shown} removed")
        elif before[name] != after[name]:
            found.append(f"{what} {shown} {how(name)}")
    return found


def _dist(record: StageFingerprint) -> str:
    if record.distribution is None:
        return "no distribution"
    return f"{record.distribution} {record.distribution_version or '?'}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _param_fingerprint(value: Any, table: CodecTable) -> str:
    try:
        return table.fingerprint(value)
    except UnstorableError as exc:
        refused = exc
    try:  # a tuple, a nested mix: canonical JSON (a tuple counts as the list it is in a pipeline file)
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        raise refused from None
    return _sha256("json\0" + text)


def _contracts(stage: Stage) -> dict[str, str]:
    found = {f"input {name}": _sha256(schema_text(s)) for name, s in stage.inputs.items()}
    found.update({f"output {name}": _sha256(schema_text(s)) for name, s in stage.outputs.items()})
    return found


def schema_text(schema: Any) -> str:
    """A schema as text: a lazy ``"module:attr"`` reference as itself; a pandera schema (or model) by its repr
    and its columns', index's and checks' reprs (a schema's own repr leaves the checks out); memory addresses
    dropped, so that the text is the same in every process."""
    if isinstance(schema, str):
        return schema
    to_schema = getattr(schema, "to_schema", None)
    if isinstance(schema, type) and callable(to_schema):  # a pandera DataFrameModel
        schema = to_schema()
    parts = [repr(schema), repr(getattr(schema, "checks", None))]
    columns = getattr(schema, "columns", None)
    if isinstance(columns, Mapping):
        parts += [f"{name!r}: {col!r} {getattr(col, 'checks', None)!r}" for name, col in columns.items()]
    index = getattr(schema, "index", None)
    if index is not None:
        parts.append(f"index: {index!r} {getattr(index, 'checks', None)!r}")
    return _ADDRESS.sub("", "\n".join(parts))


def code_digest(func: Callable[..., Any]) -> str:
    """The sha256 of :func:`code_text`: what a fingerprint holds of the code."""
    return _sha256(code_text(func))


def code_text(func: Callable[..., Any]) -> str:
    """The text a stage's code is fingerprinted by: its qualified name, its source lines (as
    ``inspect.getsource`` finds them) and a digest of its compiled code.

    The compiled code is what runs: a module edited but not reloaded (a notebook) has new source and old code,
    and a result of the old code is never taken for one of the new. Without a source file (``python -c``) the
    compiled code alone still sees a change.
    """
    func = inspect.unwrap(func)
    name = f"{getattr(func, '__module__', '?')}:{getattr(func, '__qualname__', type(func).__qualname__)}"
    code = getattr(func, "__code__", None)
    if isinstance(code, types.CodeType):
        linecache.checkcache(code.co_filename)
        lines = linecache.getlines(code.co_filename)
        first = code.co_firstlineno - 1  # inspect.getsource's lines, without its tokenizing (a tenth of its cost)
        source = "".join(lines[first:max(_last_line(code), first + 1)])
        compiled = hashlib.sha256()
        _hash_code(code, compiled)
        defaults = _ADDRESS.sub("", repr((getattr(func, "__defaults__", None), getattr(func, "__kwdefaults__", None))))
        return f"{name}\n{source}\n{compiled.hexdigest()} {defaults}"
    try:
        return name + "\n" + inspect.getsource(func)
    except (OSError, TypeError):  # a builtin, a callable object without source
        return name


def _last_line(code: types.CodeType) -> int:
    last = max((end for _, end, _, _ in code.co_positions() if end is not None), default=code.co_firstlineno)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            last = max(last, _last_line(const))
    return last


def _hash_code(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    h.update(" ".join((*code.co_names, "|", *code.co_varnames)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _hash_code(const, h)
        elif isinstance(const, str):
            h.update(b"s" + const.encode("utf-8", "surrogatepass"))
        else:
            h.update(_ADDRESS.sub("", repr(const)).encode())
