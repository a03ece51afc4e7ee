"""Data contracts at stage boundaries.

A contract is a schema on a stage's input or output artifact (``@stage(inputs={...}, outputs={...})``).
Validators plug in through the ``stagekit_validate_artifact`` and ``stagekit_check_compatible`` hooks; the
pandera validator below is built in. This module never imports pandera or pandas at import time: a pandera
schema is recognised by the module its class comes from, and pandera is imported only when such a schema is
actually checked (by then the user's own schema has imported it anyway).

:class:`ContractChecker` applies the run's contract mode (strict / warn / off, overridable per stage) around
the validate hook; :func:`static_problems` compares producer and consumer schemas before any data flows.
"""

from __future__ import annotations

import re
import threading
import warnings
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from stagekit._text import table_lines
from stagekit.errors import ContractError, ContractModeError, ContractWarning, StageDefinitionError
from stagekit.hookspecs import hookimpl
from stagekit.stage import CONTRACT_MODES, resolve_reference

if TYPE_CHECKING:
    from stagekit.stage import Stage

__all__ = [
    "ContractChecker",
    "ContractModeError",
    "ContractWarning",
    "is_pandera_schema",
    "resolve_schema",
    "stagekit_check_compatible",
    "stagekit_validate_artifact",
    "static_problems",
]

BOUNDARIES = ("input", "output")
_SHOW_ROWS = 5  # failure cases shown in a message
_CELL = 40  # widest cell in the failure table
_CACHE_SIZE = 256


# --- the contract checker (used by the runner around each stage) ------------------------------------


class _Entry:
    """One validation of one value against one schema; concurrent askers wait for the first."""

    __slots__ = ("done", "outcome", "ref", "schema", "where")

    def __init__(self, value: Any, schema: Any, where: tuple[str, str, str]) -> None:
        try:
            self.ref: Callable[[], Any] = weakref.ref(value)
        except TypeError:  # ints, dicts...: keep the value alive instead, so its id is not reused
            self.ref = lambda: value
        self.schema = schema  # keeps id(schema) from being reused
        self.where = where  # (stage, artifact, boundary) that ran the validation
        self.done = threading.Event()
        self.outcome: ContractError | bool | BaseException | None = None


class ContractChecker:
    """Check a stage's input or output artifacts against its contracts, under a contract mode.

    ``validate`` is called with keyword arguments ``stage, artifact, value, schema, boundary`` (pass
    ``plugin_manager.hook.stagekit_validate_artifact``). The effective mode of a stage is "off" if the run's
    mode is "off"; otherwise ``stage_modes[stage.name]`` if given, then ``stage.contracts``, then the run's
    mode.
    Thread-safe. It pickles without its cache, but only if ``validate`` pickles (a pluggy hook does not):
    in worker processes build a new one from the worker's plugin manager. ``emit_warnings=False`` leaves
    warning to the caller (a worker process's warnings would not reach the user): ``check`` still returns
    the errors.
    """

    def __init__(
        self,
        validate: Callable[..., ContractError | bool | None],
        mode: str = "strict",
        stage_modes: Mapping[str, str] | None = None,
        *,
        emit_warnings: bool = True,
    ) -> None:
        _check_mode(mode, "the run's contract mode")
        modes = dict(stage_modes or {})
        for name, stage_mode in modes.items():
            _check_mode(stage_mode, f"the contract mode of stage {name!r}")
        self.validate = validate
        self.mode = mode
        self.stage_modes = modes
        self.emit_warnings = emit_warnings
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, int], _Entry] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"validate": self.validate, "mode": self.mode, "stage_modes": self.stage_modes,
                "emit_warnings": self.emit_warnings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["validate"], state["mode"], state["stage_modes"],  # type: ignore[misc]
                      emit_warnings=state["emit_warnings"])

    def mode_for(self, stage: Stage) -> str:
        """The contract mode that applies to ``stage`` in this run."""
        if self.mode == "off":
            return "off"
        return self.stage_modes.get(stage.name) or stage.contracts or self.mode

    def check(self, stage: Stage, boundary: str, values: Mapping[str, Any]) -> list[ContractError]:
        """Check ``stage.inputs`` ("input", before it runs) or ``stage.outputs`` ("output", after it runs).

        Strict: raise the ContractError (one error listing all if several artifacts fail). Warn: warn a
        :class:`ContractWarning` for each and return them. Off: return ``[]`` at once. Artifacts absent from
        ``values`` are skipped (the runner reports missing artifacts itself).
        """
        if self.mode == "off":
            return []
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be 'input' or 'output', not {boundary!r}")
        schemas = stage.inputs if boundary == "input" else stage.outputs
        if not schemas:
            return []
        mode = self.mode_for(stage)
        if mode == "off":
            return []
        errors = [
            err
            for artifact, schema in schemas.items()
            if artifact in values
            and (err := self._outcome(stage, artifact, values[artifact], schema, boundary)) is not None
        ]
        if not errors:
            return []
        if mode == "strict":
            raise errors[0] if len(errors) == 1 else _combined(stage, boundary, errors)
        if self.emit_warnings:
            for err in errors:
                warnings.warn(ContractWarning(str(err)), stacklevel=2)
        return errors

    def check_static(
        self, edges: Iterable[tuple[Stage, Stage, str]], check_compatible: Callable[..., list[str] | None]
    ) -> list[str]:
        """:func:`static_problems` under the consumers' modes, for the check before a run.

        Edges into a consumer whose mode is "off" are skipped; those into a "warn" consumer are warned
        (:class:`ContractWarning`); the problems returned are those that must refuse the run.
        """
        if self.mode == "off":
            return []
        refused: list[str] = []
        for edge in edges:
            mode = self.mode_for(edge[1])
            if mode == "off":
                continue
            problems = static_problems([edge], check_compatible)
            if mode == "warn":
                for problem in problems if self.emit_warnings else ():
                    warnings.warn(ContractWarning(problem), stacklevel=2)
            else:
                refused.extend(problems)
        return refused

    def _outcome(
        self, stage: Stage, artifact: str, value: Any, schema: Any, boundary: str
    ) -> ContractError | None:
        where = (stage.name, artifact, boundary)
        schema = resolve_schema(schema, stage, boundary, artifact)
        entry, owner = self._claim(value, schema, where)
        if owner:
            try:
                entry.outcome = self.validate(
                    stage=stage, artifact=artifact, value=value, schema=schema, boundary=boundary
                )
            except BaseException as exc:
                entry.outcome = exc
                with self._lock:  # a crashed validation is not remembered: the next asker tries again
                    self._cache.pop((id(value), id(schema)), None)
                raise
            finally:
                entry.done.set()
        else:
            entry.done.wait()
        outcome = entry.outcome
        if isinstance(outcome, BaseException) and not isinstance(outcome, ContractError):
            raise outcome
        if outcome is None:
            return ContractError(
                f"stage {stage.name!r} {boundary} {artifact!r}: no contract validator knows its schema "
                f"({_describe(schema)}); pandera schemas are built in, other kinds need a plugin that "
                "implements stagekit_validate_artifact",
                stage=stage.name, artifact=artifact, boundary=boundary,
            )
        if outcome is True:
            return None
        if not isinstance(outcome, ContractError):
            return ContractError(
                f"stage {stage.name!r} {boundary} {artifact!r} breaks its contract "
                f"(the validator returned {outcome!r})",
                stage=stage.name, artifact=artifact, boundary=boundary,
            )
        return outcome if entry.where == where else _retarget(outcome, stage.name, artifact, boundary)

    def _claim(self, value: Any, schema: Any, where: tuple[str, str, str]) -> tuple[_Entry, bool]:
        key = (id(value), id(schema))
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry.ref() is value and entry.schema is schema:
                self._cache.move_to_end(key)
                return entry, False
            entry = _Entry(value, schema, where)
            self._cache[key] = entry
            if len(self._cache) > _CACHE_SIZE:
                self._evict()
            return entry, True

    def _evict(self) -> None:
        dead = [k for k, e in self._cache.items() if e.ref() is None]
        for k in dead:
            del self._cache[k]
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)


def _check_mode(mode: Any, what: str) -> None:
    if mode not in CONTRACT_MODES:
        raise ContractModeError(f"{what} must be one of {', '.join(CONTRACT_MODES)}, not {mode!r}")


def _combined(stage: Stage, boundary: str, errors: list[ContractError]) -> ContractError:
    names = ", ".join(repr(e.artifact) for e in errors)
    body = "\n\n".join(str(e) for e in errors)
    return ContractError(
        f"stage {stage.name!r}: {len(errors)} {boundary} artifacts break their contracts ({names}):"
        f"\n\n{body}",
        stage=stage.name, boundary=boundary, failures=errors,
    )


def _retarget(err: ContractError, stage: str, artifact: str, boundary: str) -> ContractError:
    """The error found at another boundary for the same value and schema, named for this one."""
    origin = f"stage {err.stage!r} {err.boundary} {err.artifact!r}"
    return ContractError(
        f"stage {stage!r} {boundary} {artifact!r} breaks its contract: the same value failed the same "
        f"schema at {origin}:\n{err}",
        stage=stage, artifact=artifact, boundary=boundary, failures=err.failures,
    )


# --- static compatibility ---------------------------------------------------------------------------


def static_problems(
    edges: Iterable[tuple[Stage, Stage, str]], check_compatible: Callable[..., list[str] | None]
) -> list[str]:
    """Compare producer output schemas with consumer input schemas along ``(producer, consumer, artifact)``.

    ``check_compatible`` is called with keyword arguments ``producer, consumer, artifact, produced,
    required`` (pass ``plugin_manager.hook.stagekit_check_compatible``); edges where either side declares
    no schema, or both declare the same schema object, are skipped, and so are schemas no validator knows.
    Lazy ``"module:attr"`` schemas are imported here; one that cannot be is a problem.
    """
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for producer, consumer, artifact in edges:
        key = (producer.name, consumer.name, artifact)
        produced, required = producer.outputs.get(artifact), consumer.inputs.get(artifact)
        if key in seen or produced is None or required is None or produced is required:
            continue
        seen.add(key)
        try:
            produced = resolve_schema(produced, producer, "output", artifact)
            required = resolve_schema(required, consumer, "input", artifact)
        except StageDefinitionError as exc:
            problems.append(str(exc))
            continue
        if produced is required:
            continue
        found = check_compatible(
            producer=producer, consumer=consumer, artifact=artifact, produced=produced, required=required
        )
        problems.extend(found or [])
    return problems


def resolve_schema(schema: Any, stage: Stage | None = None, boundary: str = "", artifact: str = "") -> Any:
    """The schema itself, or the object a lazy ``"module:attr"`` schema names (imported on first use).

    Naming schemas lazily keeps registering a stage free of pandera's import cost (and lets a stage with
    schemas pickle by reference). A reference that cannot be imported raises ``StageDefinitionError``.
    """
    if not isinstance(schema, str):
        return schema
    try:
        return resolve_reference(schema)
    except Exception as exc:
        where = f"stage {stage.name!r} {boundary} {artifact!r}: " if stage is not None else ""
        raise StageDefinitionError(f"{where}cannot import its schema {schema!r}: {exc}") from exc


# --- the built-in pandera validator -----------------------------------------------------------------


def is_pandera_schema(schema: Any) -> bool:
    """True for a pandera schema object or model class, decided without importing pandera."""
    cls = schema if isinstance(schema, type) else type(schema)
    return any(getattr(k, "__module__", "").startswith("pandera.") for k in cls.__mro__)


@hookimpl(trylast=True)
def stagekit_validate_artifact(
    stage: Stage, artifact: str, value: Any, schema: Any, boundary: str
) -> ContractError | bool | None:
    """Validate with pandera (lazily, collecting every failure); None for a schema that is not pandera's."""
    if not is_pandera_schema(schema):
        return None
    from pandera.errors import BackendNotFoundError, SchemaError, SchemaErrors

    schema_obj = _as_schema(schema)
    head = f"stage {stage.name!r} {boundary} {artifact!r}"
    mismatch = _kind_mismatch(schema_obj, value)
    if mismatch is None:
        try:
            schema_obj.validate(value, lazy=True)
            return True
        except SchemaErrors as exc:
            return _failure_error(head, stage.name, artifact, boundary, schema, exc.failure_cases)
        except SchemaError as exc:  # some failures bypass lazy collection
            rows = [{"column": getattr(exc, "column_name", None), "check": str(exc.check or exc.reason_code),
                     "index": None, "failure_case": str(exc)}]
            return _failure_error(head, stage.name, artifact, boundary, schema, rows)
        except BackendNotFoundError as exc:
            mismatch = str(exc).split(". ")[0]
    return ContractError(
        f"{head} breaks its contract ({_describe(schema)}): it is a {_type_name(value)}, but the schema "
        f"checks a {_family(schema_obj)} ({mismatch})",
        stage=stage.name, artifact=artifact, boundary=boundary,
    )


@hookimpl(trylast=True)
def stagekit_check_compatible(
    producer: Stage, consumer: Stage, artifact: str, produced: Any, required: Any
) -> list[str] | None:
    """Problems between two pandera schemas on one edge; None if either is not pandera's.

    Found: a column the consumer needs that the producer does not promise (absent or optional), a declared
    dtype the consumer does not accept (unless the consumer coerces), nullable into non-nullable, a column the
    producer promises that the consumer's strict schema forbids, and schemas for different frame libraries.
    Checks (value constraints) are not compared: they are arbitrary code.
    """
    if not (is_pandera_schema(produced) and is_pandera_schema(required)):
        return None
    prod, cons = _as_schema(produced), _as_schema(required)
    where = f"stage {producer.name!r} -> stage {consumer.name!r}, artifact {artifact!r}"
    if _family(prod) != _family(cons):
        return [f"{where}: the producer promises a {_family(prod)}, the consumer expects a {_family(cons)}"]
    pcols, ccols = getattr(prod, "columns", None), getattr(cons, "columns", None)
    if not isinstance(pcols, dict) or not isinstance(ccols, dict):
        return []
    problems: list[str] = []
    for name, ccol in ccols.items():
        problems.extend(_column_problems(f"{where}, column {name!r}", name, ccol, pcols, cons))
    if getattr(cons, "strict", False) is True:
        patterns = [n for n, c in ccols.items() if getattr(c, "regex", False)]
        for name, pcol in pcols.items():
            if (not getattr(pcol, "regex", False) and pcol.required and name not in ccols
                    and not any(re.match(rx, str(name)) for rx in patterns)):
                problems.append(f"{where}, column {name!r}: the producer promises it but the consumer's "
                                "strict schema forbids columns it does not declare")
    pidx, cidx = getattr(prod, "index", None), getattr(cons, "index", None)
    if pidx is not None and cidx is not None and not (hasattr(pidx, "indexes") or hasattr(cidx, "indexes")):
        problems.extend(_field_problems(f"{where}, index", pidx, cidx, cons))  # MultiIndex: not compared
    return problems


def _column_problems(at: str, name: Any, ccol: Any, pcols: dict[Any, Any], cons: Any) -> list[str]:
    if getattr(ccol, "regex", False):
        plain = [n for n, c in pcols.items() if not getattr(c, "regex", False) and c.required]
        if ccol.required and not any(re.match(str(name), str(n)) for n in plain):
            return [f"{at}: the consumer needs a column matching this pattern, the producer promises none"]
        return []
    pcol = pcols.get(name)
    if pcol is None or getattr(pcol, "regex", False) or not pcol.required:
        if not ccol.required:
            return []
        why = "does not promise it" if pcol is None or pcol.regex else "declares it optional (required=False)"
        return [f"{at}: the consumer needs it but the producer {why}"]
    return _field_problems(at, pcol, ccol, cons)


def _field_problems(at: str, produced: Any, required: Any, cons: Any) -> list[str]:
    """dtype and nullability of one column (or index) promised by the producer, against the consumer's."""
    problems = []
    pdt, cdt = produced.dtype, required.dtype
    coerces = bool(getattr(cons, "coerce", False) or getattr(required, "coerce", False))
    if cdt is not None and pdt is not None and not coerces and not _accepts(cdt, pdt):
        problems.append(f"{at}: the producer promises dtype {pdt} but the consumer requires {cdt}")
    if produced.nullable and not required.nullable:
        problems.append(f"{at}: the producer allows nulls (nullable=True) but the consumer does not")
    return problems


def _accepts(required: Any, produced: Any) -> bool:
    try:
        return bool(required.check(produced))
    except Exception:  # exotic dtypes without a comparable check: fall back to equality
        return bool(required == produced)


# --- helpers ----------------------------------------------------------------------------------------


def _as_schema(schema: Any) -> Any:
    """A DataFrameModel class becomes its schema (pandera caches it per class)."""
    model: Any = schema
    return model.to_schema() if isinstance(schema, type) else schema


def _describe(schema: Any) -> str:
    if isinstance(schema, type):
        return f"model {schema.__qualname__}"
    name = getattr(schema, "name", None)
    return f"{type(schema).__name__} {name!r}" if name else type(schema).__name__


def _family(schema: Any) -> str:
    """What kind of value a pandera schema checks, from the API module its class lives in."""
    module = type(schema).__module__
    if module.startswith("pandera.api.pandas."):
        return "pandas Series" if "Series" in type(schema).__name__ else "pandas DataFrame"
    if module.startswith("pandera.api.pyarrow."):
        return "pyarrow Table"
    if module.startswith("pandera.api.polars."):
        return "polars DataFrame or LazyFrame"
    parts = module.split(".")
    return f"{parts[2] if len(parts) > 2 else module} value"


_ACCEPTED_MODULES = {
    "pandas DataFrame": ("pandas", "modin", "dask", "pyspark", "geopandas"),
    "pandas Series": ("pandas", "modin", "dask", "pyspark", "geopandas"),
    "pyarrow Table": ("pyarrow",),
    "polars DataFrame or LazyFrame": ("polars",),
}


def _kind_mismatch(schema: Any, value: Any) -> str | None:
    """Why ``value`` cannot be checked by ``schema`` at all (wrong frame library), or None."""
    accepted = _ACCEPTED_MODULES.get(_family(schema))
    if accepted is None:
        return None
    module = type(value).__module__.split(".")[0]
    if module in accepted:
        return None
    hint = {"pandas": "pandera.pandas", "pyarrow": "pandera.pyarrow", "polars": "pandera.polars"}.get(module)
    return f"declare the schema with {hint} or convert the value" if hint else "convert the value"


def _type_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _failure_error(
    head: str, stage: str, artifact: str, boundary: str, schema: Any, cases: Any
) -> ContractError:
    keys = _failure_keys(cases)
    counts = Counter(keys)
    total = len(keys)
    lines = [f"{head} breaks its contract ({_describe(schema)}): {total} failure{'s' * (total != 1)} "
             f"in {len(counts)} check{'s' * (len(counts) != 1)}"]
    summary = [[_where(col), str(chk), str(n)] for (col, chk), n in counts.most_common()]
    lines.extend("  " + line for line in table_lines(["column", "check", "failures"], summary))
    shown = min(_SHOW_ROWS, total)
    lines.append(f"first failure cases ({shown} of {total}):")
    rows = [[_where(k[0]), str(k[1]), _cell(idx), _cell(fc)]
            for k, idx, fc in zip(keys, _cells(cases, "index", shown), _cells(cases, "failure_case", shown),
                                  strict=False)]
    lines.extend("  " + line for line in table_lines(["column", "check", "index", "failure case"], rows))
    return ContractError("\n".join(lines), stage=stage, artifact=artifact, boundary=boundary, failures=cases)


def _failure_keys(cases: Any) -> list[tuple[Any, Any]]:
    """(column, check) of every failure case; frame-level failures name the column they are about, if any."""
    contexts, columns = _cells(cases, "schema_context"), _cells(cases, "column")
    checks, fcases = _cells(cases, "check"), _cells(cases, "failure_case")
    keys = []
    for ctx, col, chk, fc in zip(contexts, columns, checks, fcases, strict=True):
        if ctx == "DataFrameSchema" or col is None:
            col = str(fc) if chk in ("column_in_dataframe", "column_in_schema") else None
        keys.append((col, chk))
    return keys


def _where(column: Any) -> str:
    return "(frame)" if column is None else f"column {column!r}"


def _cells(cases: Any, name: str, limit: int | None = None) -> list[Any]:
    """One column of a failure-case table as a list: pandas, pyarrow, polars or a list of dicts."""
    if isinstance(cases, list):
        return [row.get(name) for row in cases[:limit]]
    names = cases.column_names if hasattr(cases, "column_names") else list(cases.columns)
    if name not in names:
        n = len(cases) if limit is None else min(limit, len(cases))
        return [None] * n
    part = cases[:limit] if limit is not None else cases
    if hasattr(part, "column") and hasattr(part, "num_rows"):  # pyarrow
        return list(part.column(name).to_pylist())
    col = part[name]
    values = col.tolist() if hasattr(col, "tolist") else col.to_list()
    return [None if _is_missing(v) else v for v in values]


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _cell(value: Any) -> str:
    text = "null" if _is_missing(value) else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= _CELL else text[: _CELL - 3] + "..."
