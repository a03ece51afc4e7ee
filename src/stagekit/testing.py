"""Test helpers for stage-plugin authors, shipped as a pytest plugin (entry point ``pytest11``).

Fixtures:

- ``stagekit_host``: a factory ``stagekit_host(*plugins)`` for an isolated :class:`~stagekit.Host` holding
  stagekit's built-ins and exactly the plugins given — nothing installed leaks in.
- ``registrations(plugin)`` (a function): what one plugin registers, for asserting on its stages and merges.
- ``run_stage``: ``run_stage(stage, params={...}, **artifacts)`` runs one stage through the real runner
  (params and contracts checked as in a run) and returns ``{artifact: value}`` of what it provided. An
  artifact the stage does not require, or a param it does not take, is an error, never silently ignored.

And :func:`check_plugin_conformance` (also as the ``stagekit_conformance`` fixture) checks that an installed
distribution's entry point loads, registers valid stages and hooks, and declares a stagekit requirement this
version satisfies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from stagekit._text import unknown_name
from stagekit.errors import PipelineError
from stagekit.pipeline import Pipeline
from stagekit.plugins.host import Host
from stagekit.plugins.registry import Registry
from stagekit.stage import Stage


def isolated_host(*plugins: object, builtins: bool = True) -> Host:
    """A host with the built-ins and exactly ``plugins``: no entry points, no environment controls."""
    return Host.isolated(*plugins, builtins=builtins)


def registrations(plugin: object, name: str = "plugin") -> Registry:
    """What ``plugin`` alone registers (stages, merges, executors), through the real hooks."""
    return isolated_host((name, plugin), builtins=False).registry


def run_one_stage(stage: Stage, /, *, host: Host | None = None, contracts: str = "strict",
                  params: Mapping[str, Any] | None = None, **artifacts: Any) -> dict[str, Any]:
    """Run a single stage on the given artifacts, with ``params`` overriding its own; return what it provided,
    by artifact name. Keywords that are not artifacts it requires are refused, naming close matches."""
    problems = [unknown_name("artifact", a, stage.requires) + f" for stage {stage.name!r} (it requires "
                f"{', '.join(stage.requires) or 'nothing'})" for a in artifacts if a not in stage.requires]
    problems += [f"stage {stage.name!r} requires artifact {a!r}, which was not given" for a in stage.requires
                 if a not in artifacts]
    if problems:
        raise PipelineError(problems[0], problems)
    run_params = {stage.name: dict(params)} if params else {}
    result = Pipeline([stage], host=host or isolated_host()).run(artifacts, contracts=contracts, params=run_params)
    return {name: result.artifacts[name] for name in stage.provides}


def check_plugin_conformance(distribution: str, group: str = "stagekit") -> list[str]:
    """Problems with an installed plugin distribution (empty if it conforms).

    Its entry point(s) in ``group`` load, their hook names are all known, registration succeeds and yields
    at least one stage, executor or merge, and the distribution requires a stagekit version this one
    satisfies.
    """
    from stagekit.plugins import discovery
    from stagekit.plugins.discovery import normalize

    problems: list[str] = []
    entry_points = [e for e in discovery.find_entry_points(group)
                    if normalize(e.distribution) == normalize(distribution)]
    if not entry_points:
        return [f"distribution {distribution!r} has no entry point in group {group!r} (is it installed?)"]
    if discovery.required_stagekit(entry_points[0].distribution) is None:
        problems.append(f"distribution {distribution!r} does not declare a requirement on stagekit")
    names = [e.name for e in entry_points]
    host = Host(group=group, autoload=True, allow=names, env={}, strict=False)
    for name in names:
        record = host.record(name)
        if record.status != "loaded":
            problems.append(f"plugin {name!r}: {record.status}: {record.error}")
            continue
        registry = host.registry
        executors = [n for n, o in registry.executor_origins.items() if o.plugin == name]
        merges = [str(t) for t, _, o in registry.merges if o.plugin == name]
        if not (record.stages or executors or merges):
            problems.append(f"plugin {name!r} registered no stage, executor or merge")
    return problems


@pytest.fixture
def stagekit_host() -> Callable[..., Host]:
    return isolated_host


@pytest.fixture
def run_stage() -> Callable[..., Any]:
    return run_one_stage


@pytest.fixture
def stagekit_conformance() -> Callable[..., list[str]]:
    return check_plugin_conformance
