"""The catalog: a pipeline file's named datasets, read as initial artifacts or written when a stage produces them.

```toml
[catalog.companies]                          # no selected stage produces it: read before the run
path = "data/01_raw/companies.csv"           # relative: against the pipeline file's folder; or an fsspec URL
load_args = { sep = ";" }                    # handed to the reader (pandas.read_csv)

[catalog.model_input_table]                  # a stage produces it: written there after the run
path = "data/03_primary/model_input_table.parquet"
save_args = { compression = "zstd" }         # handed to the writer (DataFrame.to_parquet)
```

The format comes from ``format = "..."`` or from the path's extension (the longest suffix a format claims).
Formats are plugins' (``stagekit_register_formats``); the built-in ones are csv, parquet, json and excel
(:mod:`stagekit.store.builtin_formats`). A format is a :class:`FileFormat`; its ``write`` is atomic for local
paths when it writes through :func:`atomic_path`, as the built-in ones do.

Reading is lazy in two ways: nothing is read when the pipeline file is loaded (``check`` and ``graph`` read no
data; :class:`CatalogInput` stands in for the value until then), and at the run's start only the entries a
selected stage requires are read.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from stagekit.atomic import atomic_path as _atomic_local_path
from stagekit.errors import CatalogError, PipelineFileError, StagekitError

if TYPE_CHECKING:
    from stagekit.records import RunResult
    from stagekit.stage import Stage

__all__ = ["CatalogEntry", "CatalogInput", "CatalogPlan", "FileFormat", "atomic_path", "is_url", "load_inputs",
           "parse_catalog", "plan_catalog", "resolve_formats", "run_with_catalog", "save_outputs"]

_KEYS: dict[str, type] = {"path": str, "format": str, "load_args": dict, "save_args": dict}
# what a Kedro catalog.yml says instead, and what it is here
_KEDRO_KEYS = {"type": "format", "filepath": "path"}
_KEDRO_TYPES = {"pandas.CSVDataset": "csv", "pandas.CSVDataSet": "csv", "pandas.ParquetDataset": "parquet",
                "pandas.ParquetDataSet": "parquet", "pandas.ExcelDataset": "excel", "pandas.ExcelDataSet": "excel",
                "pandas.JSONDataset": "json", "pandas.JSONDataSet": "json", "json.JSONDataset": "json",
                "json.JSONDataSet": "json"}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class FileFormat(Protocol):
    """How a catalog format reads and writes a dataset.

    ``suffixes`` are the extensions it claims (``(".csv", ".csv.gz")``), lowercase with their dot.
    ``read(path, **load_args)`` returns the value; ``write(value, path, **save_args)`` writes it, atomically
    for a local path (write into ``with atomic_path(path) as tmp:``). ``path`` is a local path or an fsspec
    URL (``s3://...``); a format that cannot reach URLs says so in the error it raises.
    """

    suffixes: tuple[str, ...]

    def read(self, path: str, **load_args: Any) -> Any: ...

    def write(self, value: Any, path: str, **save_args: Any) -> None: ...


@attrs.frozen
class CatalogEntry:
    """One declared dataset: ``path`` is absolute (or a URL); ``format`` is None until resolved."""

    name: str
    path: str
    format: str | None = None
    load_args: Mapping[str, Any] = attrs.field(factory=dict)
    save_args: Mapping[str, Any] = attrs.field(factory=dict)

    def __str__(self) -> str:
        return f"catalog entry {self.name!r} ({self.path}, format {self.format or '?'})"


@attrs.frozen(repr=False)
class CatalogInput:
    """Stands in for a catalog entry's value until the run reads it (in ``LoadedPipeline.artifacts``)."""

    entry: CatalogEntry

    def __repr__(self) -> str:
        return f"<{self.entry}, read when the run starts>"


def is_url(path: str) -> bool:
    """Whether ``path`` is a URL (``s3://bucket/x.csv``, ``memory://x``), which is neither resolved nor
    written atomically."""
    return bool(_URL.match(path))


# --- parsing ------------------------------------------------------------------------------------------


def parse_catalog(table: Mapping[str, Any], folder: Path, *, source: str | Path | None = None,
                  formats: Mapping[str, Any] | None = None) -> dict[str, CatalogEntry]:
    """The ``[catalog]`` table of a pipeline file, paths resolved against ``folder`` (the file's).

    Errors are ``PipelineFileError`` naming ``source`` (the file) and the key. With ``formats`` (name ->
    :class:`FileFormat`), each entry's format is resolved too (see :func:`resolve_formats`).
    """
    where = str(source if source is not None else folder)
    entries = {name: _entry(name, spec, folder, where) for name, spec in table.items()}
    return entries if formats is None else resolve_formats(entries, formats, source=where)


def _entry(name: str, spec: Any, folder: Path, where: str) -> CatalogEntry:
    key = f"catalog.{name}"
    if not isinstance(spec, dict):
        raise _fail(where, key, f"must be a table ([{key}] with path = \"...\"), not {type(spec).__name__}")
    for k, value in spec.items():
        if k not in _KEYS:
            raise _fail(where, f"{key}.{k}", f"unknown key (expected one of {', '.join(sorted(_KEYS))})"
                        + (f"; Kedro's {k!r} is {_KEDRO_KEYS[k]!r} here" if k in _KEDRO_KEYS else ""))
        if not isinstance(value, _KEYS[k]):
            kind = "a table" if _KEYS[k] is dict else "a string"
            raise _fail(where, f"{key}.{k}", f"must be {kind}, not {type(value).__name__}")
    if not spec.get("path"):
        raise _fail(where, key, "has no path (path = \"data/x.csv\", relative to the pipeline file, or a URL)")
    path: str = spec["path"]
    if not is_url(path):
        path = str((folder / Path(path).expanduser()).resolve())
    return CatalogEntry(name, path, spec.get("format"), dict(spec.get("load_args", {})),
                        dict(spec.get("save_args", {})))


def resolve_formats(entries: Mapping[str, CatalogEntry], formats: Mapping[str, Any], *,
                    source: str | Path = "the catalog") -> dict[str, CatalogEntry]:
    """Each entry with its format named: the one it gives (which must be registered), else the format that
    claims the longest suffix of its path. A ``PipelineFileError`` names the file and the key."""
    where = str(source)
    known = ", ".join(sorted(formats)) or "none (no plugin registers a format: is 'stagekit.formats' blocked?)"
    out = {}
    for name, entry in entries.items():
        chosen = entry.format
        if chosen is not None and chosen not in formats:
            close = difflib.get_close_matches(chosen, list(formats), n=3)
            hint = (f" (did you mean {', '.join(map(repr, close))}?)" if close else "") + (
                f"; Kedro's {chosen} is format {_KEDRO_TYPES[chosen]!r}" if chosen in _KEDRO_TYPES else "")
            raise _fail(where, f"catalog.{name}.format", f"unknown format {chosen!r}{hint}; formats: {known}")
        if chosen is None:
            chosen = _by_suffix(name, entry.path, formats, where, known)
        out[name] = attrs.evolve(entry, format=chosen)
    return out


def _by_suffix(name: str, path: str, formats: Mapping[str, Any], where: str, known: str) -> str:
    filename = (path.split("?", 1)[0] if is_url(path) else Path(path).name).lower()
    claims = [(len(s), s, f) for f, fmt in formats.items() for s in getattr(fmt, "suffixes", ())
              if filename.endswith(s.lower())]
    if not claims:
        suffix = "".join(Path(filename).suffixes) or "(none)"
        raise _fail(where, f"catalog.{name}.path", f"no format claims the extension {suffix!r}; name one with "
                    f"format = \"...\" (formats: {known})")
    longest, suffix = max((n, s) for n, s, _ in claims)
    best = sorted({f for n, _, f in claims if n == longest})
    if len(best) > 1:
        raise _fail(where, f"catalog.{name}.path", f"the extension {suffix!r} is claimed by formats "
                    f"{' and '.join(map(repr, best))}; choose one with format = \"...\"")
    return best[0]


def _fail(where: str, key: str, message: str) -> PipelineFileError:
    return PipelineFileError(f"{where}: key {key!r}: {message}")


# --- which entries a selection reads and writes -------------------------------------------------------


@attrs.frozen
class CatalogPlan:
    """``inputs``: entries a selected stage requires and none creates (read before the run); ``outputs``:
    entries a selected stage provides (written after it)."""

    inputs: dict[str, CatalogEntry]
    outputs: dict[str, CatalogEntry]


def created_by(stages: Iterable[Stage]) -> set[str]:
    """The artifacts the stages create (provide without requiring)."""
    return {a for s in stages for a in s.provides if a not in s.requires}


def plan_catalog(entries: Mapping[str, CatalogEntry], stages: Iterable[Stage]) -> CatalogPlan:
    """Which entries a run of ``stages`` reads and which it writes. An entry that the selection no longer
    produces (its producer is not selected) is read from its file; one nobody selected touches is neither."""
    stages = list(stages)
    created = created_by(stages)
    required = {a for s in stages for a in s.requires}
    provided = {a for s in stages for a in s.provides}
    return CatalogPlan({n: e for n, e in entries.items() if n in required and n not in created},
                       {n: e for n, e in entries.items() if n in provided})


# --- reading and writing ------------------------------------------------------------------------------


def load_inputs(entries: Mapping[str, CatalogEntry], produced_names: Iterable[str],
                formats: Mapping[str, Any]) -> dict[str, Any]:
    """Read every entry not in ``produced_names``: its value by name. Every entry that cannot be read is named
    in one :class:`CatalogError`."""
    produced = set(produced_names)
    values, problems, first = {}, [], None
    for name, entry in entries.items():
        if name in produced:
            continue
        try:
            values[name] = _format(entry, formats).read(entry.path, **entry.load_args)
        except Exception as exc:
            problems.append(f"{entry} cannot be read: {_reason(exc)}")
            first = first or entry
    if first is not None:
        raise CatalogError("; ".join(problems), entry=first.name, path=first.path, problems=problems)
    return values


def save_outputs(entries: Mapping[str, CatalogEntry], result: RunResult, formats: Mapping[str, Any]) -> list[str]:
    """Write each entry that a stage of the run provided (and that finished) from ``result.artifacts``;
    returns the paths written. After a failed run ``result.artifacts`` holds only the artifacts whose
    producing stages all finished, so only those are written. Every failure is named in one
    :class:`CatalogError`; the other entries are written all the same."""
    provided = {a for r in result.stages.values() if r.status in ("ok", "cached") for a in r.provided}
    saved, problems, first = [], [], None
    for name, entry in entries.items():
        if name not in provided or name not in result.artifacts:
            continue
        try:
            _format(entry, formats).write(result.artifacts[name], entry.path, **entry.save_args)
        except Exception as exc:
            problems.append(f"{entry} cannot be written: {_reason(exc)}")
            first = first or entry
            continue
        saved.append(entry.path)
    if first is not None:
        raise CatalogError("; ".join(problems) + (f" (written: {', '.join(saved)})" if saved else ""),
                           entry=first.name, path=first.path, problems=problems)
    return saved


def run_with_catalog(run: Callable[[dict[str, Any]], RunResult], artifacts: Mapping[str, Any],
                     entries: Mapping[str, CatalogEntry], formats: Mapping[str, Any]) -> RunResult:
    """``run(artifacts)`` with every :class:`CatalogInput` among ``artifacts`` read first, and the produced
    ``entries`` written after it: also after a failed run (what finished), before its error is raised again;
    a write that fails then is a note on the run's error."""
    pending = {n: v.entry for n, v in artifacts.items() if isinstance(v, CatalogInput)}
    values = {**artifacts, **load_inputs(pending, (), formats)}
    try:
        result = run(values)
    except StagekitError as exc:  # RunInterrupted too: what finished is kept
        partial = getattr(exc, "result", None)
        if partial is not None:
            try:
                save_outputs(entries, partial, formats)
            except CatalogError as failed:
                exc.add_note(f"the catalog was not fully written: {failed}")
        raise
    try:
        save_outputs(entries, result, formats)
    except CatalogError as exc:
        exc.result = result
        raise
    return result


def _format(entry: CatalogEntry, formats: Mapping[str, Any]) -> Any:
    if entry.format is None or entry.format not in formats:
        raise LookupError(f"format {entry.format!r} is not registered (formats: {', '.join(sorted(formats))})")
    return formats[entry.format]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "the file does not exist"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f" ({exc.filename})" if exc.filename else "")
    return f"{type(exc).__name__}: {exc}"


# --- atomic writes for formats ------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary path beside the local ``path`` to write into, replacing ``path`` on a clean exit
    (:func:`stagekit.atomic.atomic_path`: durable, all or nothing). A URL is yielded as it is: object stores
    replace an object whole, and there is no rename to make."""
    if is_url(path):
        yield path
        return
    with _atomic_local_path(path) as tmp:
        yield tmp


