"""The built-in contract validator: pandera schemas, through the same hooks as any validator plugin's.

This module never imports pandera or pandas at import time: a pandera schema is recognised by the module its
class comes from, and pandera is imported only when such a schema is actually checked (by then the user's own
schema has imported it anyway).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from stagekit._text import table_lines
from stagekit.contracts.checker import describe_schema
from stagekit.errors import ContractError
from stagekit.hookspecs import hookimpl

if TYPE_CHECKING:
    from stagekit.stage import Stage

__all__ = ["is_pandera_schema", "stagekit_check_compatible", "stagekit_validate_artifact", "validate_with_pandera"]

_SHOW_ROWS = 5  # failure cases shown in a message
_CELL = 40  # widest cell in the failure table


def is_pandera_schema(schema: Any) -> bool:
    """True for a pandera schema object or model class, decided without importing pandera."""
    cls = schema if isinstance(schema, type) else type(schema)
    return any(getattr(k, "__module__", "").startswith("pandera.") for k in cls.__mro__)


@hookimpl(trylast=True)
def stagekit_validate_artifact(
    stage: Stage, artifact: str, value: Any, schema: Any, boundary: str
) -> ContractError | bool | None:
    return validate_with_pandera(stage, artifact, value, schema, boundary)


def validate_with_pandera(
    stage: Stage, artifact: str, value: Any, schema: Any, boundary: str
) -> ContractError | bool | None:
    """Validate with pandera (lazily, collecting every failure); None for a schema that is not pandera's.

    Also for validator plugins that check other containers batch by batch (the Ray plugin does)."""
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
        f"{head} breaks its contract ({describe_schema(schema)}): it is a {_type_name(value)}, but the schema "
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
    lines = [f"{head} breaks its contract ({describe_schema(schema)}): {total} failure{'s' * (total != 1)} "
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
