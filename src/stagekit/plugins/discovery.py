"""Find plugins through entry points, without importing them.

Every distribution on ``sys.path`` is scanned (not only the first of each name), so that the same
distribution installed twice is reported instead of silently shadowed. The order is deterministic:
entry-point name, then distribution name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import attrs


@attrs.frozen
class FoundEntryPoint:
    name: str
    value: str
    distribution: str
    version: str
    location: str
    shadowed: tuple[str, ...]
    load: Callable[[], Any] = attrs.field(eq=False, repr=False)


def _metadata() -> Any:
    import importlib_metadata

    return importlib_metadata


def _location(dist: Any) -> str:
    path = getattr(dist, "_path", None)
    return str(path.parent) if path is not None else "?"


def normalize(name: str) -> str:
    """A distribution or plugin name as PEP 503 compares them: case-folded, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def find_entry_points(group: str) -> list[FoundEntryPoint]:
    md = _metadata()
    first: dict[str, Any] = {}
    shadows: dict[str, list[str]] = {}
    for dist in md.distributions():
        # the name from the metadata directory's path: reading every METADATA file would cost more
        raw = getattr(dist, "_normalized_name", None) or dist.metadata["Name"]
        if not raw:
            continue
        key = normalize(raw)
        if key not in first:
            first[key] = dist
        elif not _same_install(first[key], dist):
            shadows.setdefault(key, []).append(_location(dist))
    found = []
    for key, dist in first.items():
        eps = dist.entry_points.select(group=group)
        if not eps:
            continue
        headers = read_headers(dist)
        for ep in eps:
            found.append(FoundEntryPoint(
                name=ep.name, value=ep.value, distribution=headers.name, version=headers.version,
                location=_location(dist), shadowed=tuple(shadows.get(key, ())), load=ep.load,
            ))
    found.sort(key=lambda e: (e.name, normalize(e.distribution)))
    return found


@attrs.frozen
class Headers:
    """What stagekit needs of a distribution's core metadata."""

    name: str
    version: str
    requires: tuple[str, ...]


def read_headers(dist: Any) -> Headers:
    """Name, Version and Requires-Dist from METADATA (or PKG-INFO), read with a small parser of the header
    block: the email parser importlib.metadata uses costs more to import than all the plugins to load."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    fields: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            break  # the body (the long description) starts after the first blank line
        if line[0] in " \t" and key is not None:  # a folded header continues the previous one
            fields[key][-1] += " " + line.strip()
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), []).append(value.strip())
        key = key.strip().lower()
    name = (fields.get("name") or [""])[0]
    version = (fields.get("version") or [""])[0]
    if not name or not version:  # unusual metadata: let importlib.metadata decide
        return Headers(dist.metadata["Name"], dist.version, tuple(dist.requires or ()))
    return Headers(name, version, tuple(fields.get("requires-dist", ())))


def _editable_source(dist: Any) -> Path | None:
    """The project directory of an editable install (from its direct_url.json), else None."""
    try:
        info = json.loads(dist.read_text("direct_url.json") or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not info.get("dir_info", {}).get("editable"):
        return None
    url = str(info.get("url", ""))
    return Path(url.removeprefix("file://")).resolve() if url.startswith("file://") else None


def _same_install(a: Any, b: Any) -> bool:
    """Whether two metadata directories are one install: an editable install and the ``*.egg-info`` that
    building it left in its own source tree."""
    for editable, other in ((a, b), (b, a)):
        source = _editable_source(editable)
        if source is not None and Path(_location(other)).resolve().is_relative_to(source):
            return True
    return False


# "stagekit>=0.1,<0.2" or "stagekit (>=0.1)": the common forms, read without importing packaging's parser
_PLAIN = re.compile(r"^\s*stagekit\s*\(?\s*(?P<spec>[<>=!~][^;()]*?)?\s*\)?\s*$", re.I)


@cache
def required_stagekit(distribution: str | None) -> str | None:
    """The version specifier a distribution puts on ``stagekit``, or None if it puts none."""
    if not distribution:
        return None
    md = _metadata()
    try:
        requires = read_headers(md.distribution(distribution)).requires
    except md.PackageNotFoundError:
        return None
    for line in requires:
        if not re.match(r"^\s*stagekit\b(?![-_.\w])", line, re.I):
            continue
        plain = _PLAIN.match(line)
        if plain:  # no extras, no markers: the usual case
            return (plain.group("spec") or "").replace(" ", "")
        spec = _full_parse(line)
        if spec is not None:
            return spec
    return None


def _full_parse(line: str) -> str | None:
    """A requirement with extras or markers: packaging decides (and whether its marker applies)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(line)
    except InvalidRequirement:
        return None
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        return None
    return str(req.specifier)
