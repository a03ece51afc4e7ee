"""Pipeline files (TOML): which stages, the initial artifacts and params, and how to run them.

:func:`load_pipeline_file` parses one; :func:`stagekit.loading.load_pipeline` makes it runnable (exactly
what ``stagekit run FILE`` runs). Relative paths in the file resolve against the file's folder, wherever you
stand: a string in ``[artifacts]`` that contains a ``/`` or names something that exists beside the file, and
``[report] path``.

```toml
[pipeline]
stages = ["read", "clean"]      # stage names; and/or
tags = ["dataops"]              # every stage with one of these tags; and/or
targets = ["report"]            # these stages and everything upstream (no selector: every stage)
plugins = ["weather"]           # where several plugins create an artifact upstream, take these plugins' stages
executor = "thread"             # sequential | thread | process | any registered executor
workers = 4
contracts = "strict"            # strict | warn | off
timeout = 3600                  # seconds for the whole run (also: stagekit run --timeout SECONDS)
workspace = "."                 # record runs and reuse stages in this folder's run store (docs/store.md)

[artifacts]                     # initial artifacts (relative paths: against this file's folder)
raw_dir = "data/raw"

[params.clean]                  # params for one stage, by stage name
window = 20

[contracts]                     # per-stage contract modes
clean = "warn"

[executor_options]              # passed to the executor (e.g. a Ray address)

[timeouts]                      # seconds per stage, by stage name (over the stage's own @stage(timeout=...))
clean = 60

[report]                        # an HTML report of the run (also: stagekit run --report PATH)
path = "report.html"
artifacts = ["metrics"]         # which artifacts to show (default: what the last stages provided)

[catalog.companies]             # a dataset (docs/store.md): read if no selected stage creates it, written
path = "data/companies.csv"     # after the run if one provides it; format from the extension or format = "..."
load_args = { sep = ";" }       # to the reader; save_args to the writer
```
Unknown keys and wrong types are errors that name the file and the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from stagekit.errors import PipelineFileError
from stagekit.stage import CONTRACT_MODES
from stagekit.store.catalog import (
    CatalogEntry,
    parse_catalog,
)

if TYPE_CHECKING:
    pass

_TOP = {"pipeline", "artifacts", "params", "contracts", "executor_options", "report", "catalog", "timeouts"}
_REPORT: dict[str, type] = {"path": str, "artifacts": list}
_PIPELINE: dict[str, type | tuple[type, ...]] = {
    "name": str, "description": str, "stages": list, "tags": list, "targets": list, "plugins": list, "executor": str,
    "workers": int, "contracts": str, "timeout": (int, float), "workspace": str,
}


@attrs.frozen
class PipelineFile:
    path: Path
    name: str
    stages: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    executor: str = "sequential"
    workers: int | None = None
    contracts: str = "strict"
    artifacts: Mapping[str, Any] = attrs.field(factory=dict)
    params: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    stage_contracts: Mapping[str, str] = attrs.field(factory=dict)
    executor_options: Mapping[str, Any] = attrs.field(factory=dict)
    report_path: str | None = None
    report_artifacts: tuple[str, ...] | None = None
    catalog: Mapping[str, CatalogEntry] = attrs.field(factory=dict)  # formats not yet resolved (no host here)
    timeout: float | None = None  # [pipeline] timeout: the run's, in seconds
    stage_timeouts: Mapping[str, float] = attrs.field(factory=dict)  # [timeouts]: stage name -> seconds
    workspace: Path | None = None  # [pipeline] workspace, against the file's folder


def load_pipeline_file(path: str | Path) -> PipelineFile:
    """The parsed file, its relative paths resolved against its folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineFileError(f"pipeline file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineFileError(f"cannot read pipeline file {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PipelineFileError(f"{path}: invalid TOML: {exc}") from None
    return parse_pipeline(data, path)


def parse_pipeline(data: Mapping[str, Any], path: Path) -> PipelineFile:
    def fail(key: str, message: str) -> PipelineFileError:
        return PipelineFileError(f"{path}: key {key!r}: {message}")

    for key in data:
        if key not in _TOP:
            raise fail(key, f"unknown top-level key (expected one of {', '.join(sorted(_TOP))})")
        if not isinstance(data[key], dict):
            raise fail(key, f"must be a table, not {type(data[key]).__name__}")
    section = data.get("pipeline", {})
    for key, value in section.items():
        if key not in _PIPELINE:
            raise fail(f"pipeline.{key}", f"unknown key (expected one of {', '.join(sorted(_PIPELINE))})")
        wanted = _PIPELINE[key]
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise fail(f"pipeline.{key}", f"must be {_kind(wanted)}, not {type(value).__name__}")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise fail(f"pipeline.{key}", "must be a list of strings")
    mode = section.get("contracts", "strict")
    if mode not in CONTRACT_MODES:
        raise fail("pipeline.contracts", f"must be one of {', '.join(CONTRACT_MODES)}, not {mode!r}")
    if "workers" in section and section["workers"] < 1:
        raise fail("pipeline.workers", f"must be at least 1, not {section['workers']}")
    params = data.get("params", {})
    for stage_name, value in params.items():
        if not isinstance(value, dict):
            raise fail(f"params.{stage_name}", f"must be a table of params, not {type(value).__name__}")
    report = data.get("report", {})
    for key, value in report.items():
        if key not in _REPORT:
            raise fail(f"report.{key}", f"unknown key (expected one of {', '.join(sorted(_REPORT))})")
        if not isinstance(value, _REPORT[key]):
            raise fail(f"report.{key}", f"must be {_kind(_REPORT[key])}, not {type(value).__name__}")
    stage_contracts = data.get("contracts", {})
    for stage_name, value in stage_contracts.items():
        if value not in CONTRACT_MODES:
            raise fail(f"contracts.{stage_name}", f"must be one of {', '.join(CONTRACT_MODES)}, not {value!r}")
    catalog = _catalog(data, path)
    stage_timeouts = _timeouts(data, fail)
    return PipelineFile(
        path=path, name=section.get("name", path.stem), stages=tuple(section.get("stages", ())),
        tags=tuple(section.get("tags", ())), targets=tuple(section.get("targets", ())),
        plugins=tuple(section.get("plugins", ())),
        executor=section.get("executor", "sequential"), workers=section.get("workers"), contracts=mode,
        artifacts=_resolved(data.get("artifacts", {}), path.parent), params=params,
        stage_contracts=dict(stage_contracts), executor_options=dict(data.get("executor_options", {})),
        report_path=str((path.parent / report["path"]).absolute()) if "path" in report else None,
        report_artifacts=tuple(report["artifacts"]) if "artifacts" in report else None, catalog=catalog,
        timeout=section.get("timeout"), stage_timeouts=stage_timeouts,
        workspace=(path.parent / section["workspace"]).absolute() if "workspace" in section else None,
    )


def _timeouts(data: Mapping[str, Any], fail: Callable[[str, str], PipelineFileError]) -> dict[str, float]:
    """``[timeouts]``: a number of seconds per stage name (positive, and naming a stage: the run's check)."""
    found = {}
    for stage_name, value in data.get("timeouts", {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"timeouts.{stage_name}", f"must be a number of seconds, not {type(value).__name__}")
        found[stage_name] = value
    return found


def _catalog(data: Mapping[str, Any], path: Path) -> dict[str, CatalogEntry]:
    """The ``[catalog]`` entries; one that ``[artifacts]`` also names is an error naming both."""
    catalog = parse_catalog(data.get("catalog", {}), path.parent, source=path)
    for name in sorted(catalog.keys() & data.get("artifacts", {}).keys()):
        raise PipelineFileError(f"{path}: key 'catalog.{name}': artifact {name!r} is named in both [artifacts] "
                                f"and [catalog] (artifacts.{name} and catalog.{name}); keep one")
    return catalog


def _resolved(artifacts: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """String artifacts that are relative paths, as paths against the pipeline file's folder."""
    out = dict(artifacts)
    for name, value in artifacts.items():
        if isinstance(value, str) and value and not Path(value).is_absolute() and (
                "/" in value or (folder / value).exists()):
            out[name] = str((folder / value).resolve())
    return out


def parse_param(text: str) -> tuple[str, str, Any]:
    """``STAGE.KEY=VALUE`` from the command line; VALUE is read as TOML (``3``, ``true``, ``"x"``, ``[1, 2]``),
    else taken as a plain string."""
    target, sep, raw = text.partition("=")
    stage_name, dot, key = target.rpartition(".")
    if not sep or not dot or not stage_name or not key:
        raise PipelineFileError(f"--param {text!r}: expected STAGE.KEY=VALUE, e.g. clean.window=20")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if raw[:1] in "[{\"'" or raw.strip() != raw:  # meant as TOML, but broken: say so, never guess
            raise PipelineFileError(f"--param {text!r}: {raw!r} is not a valid TOML value (quote a string: "
                                    f"{stage_name}.{key}='\"...\"')") from None
        value = raw  # a bare word: a string
    return stage_name, key, value


def _kind(wanted: type | tuple[type, ...]) -> str:
    if wanted == (int, float):
        return "a number"
    return {str: "a string", list: "a list", int: "an integer"}.get(wanted if isinstance(wanted, type) else str,
                                                                     str(wanted))
