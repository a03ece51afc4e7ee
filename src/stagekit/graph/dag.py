"""The DAG builds itself from what stages declare.

For each artifact X: its *creator* provides X without requiring it (at most one; the initial artifacts
count as one); an *updater* requires and provides X and runs after the creator; a *reader* requires X only
and runs after the creator and every updater, so it sees the merged value. ``after`` adds any other order.

Everything here is iterative: a 100,000-stage chain builds and validates without recursion.
"""

from __future__ import annotations

import graphlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from stagekit.errors import CycleError, PipelineError
from stagekit.plugins.registry import unknown_name
from stagekit.stage import Stage

#: the pseudo-writer of the initial artifacts (no stage can have an empty name)
INITIAL = ""


@attrs.define
class ArtifactRoles:
    creator: str | None = None  # a stage name, INITIAL, or None if nobody creates it
    updaters: list[str] = attrs.field(factory=list)
    readers: list[str] = attrs.field(factory=list)

    @property
    def writers(self) -> list[str]:
        return ([self.creator] if self.creator is not None else []) + self.updaters


@attrs.define
class Dag:
    """Stages, their dependencies, and who writes and reads each artifact."""

    stages: dict[str, Stage]
    deps: dict[str, list[str]]  # stage -> the stages it waits for
    roles: dict[str, ArtifactRoles]
    initial: frozenset[str]
    order: list[str]  # a deterministic topological order
    successors: dict[str, list[str]]  # stage -> the stages that wait for it
    plan: Any = attrs.field(default=None, repr=False)  # the VersionPlan, made once by the first run

    def edges(self) -> Iterable[tuple[str, str]]:
        for name, preds in self.deps.items():
            for p in preds:
                yield p, name

    def producer_edges(self) -> Iterable[tuple[Stage, Stage, str]]:
        """(producer, consumer, artifact) for every stage that reads an artifact another stage wrote."""
        for artifact, role in self.roles.items():
            for consumer in role.updaters + role.readers:
                producers = [role.creator] if consumer in role.updaters else role.writers
                for p in producers:
                    if p and p != consumer:
                        yield self.stages[p], self.stages[consumer], artifact


def build_dag(
    stages: Iterable[Stage],
    initial: Iterable[str] = (),
    origin: Callable[[str], str] = lambda name: "",
) -> Dag:
    """Build and validate the DAG; a :class:`PipelineError` lists every problem found."""
    by_name: dict[str, Stage] = {}
    problems: list[str] = []
    for s in stages:
        if s.name in by_name and by_name[s.name] is not s:
            problems.append(f"two different stages are named {s.name!r}")
        by_name[s.name] = s
    initial = frozenset(initial)
    roles = _roles(by_name, initial, origin, problems)
    deps: dict[str, list[str]] = {name: [] for name in by_name}
    for artifact, role in roles.items():
        if role.creator:
            for u in role.updaters + role.readers:
                deps[u].append(role.creator)
        for r in role.readers:
            deps[r].extend(role.updaters)
        if role.creator is None and artifact not in initial:
            for needy in role.updaters + role.readers:
                problems.append(
                    f"stage {needy!r}{origin(needy)} requires artifact {artifact!r}, which no selected stage "
                    "provides and the initial artifacts lack"
                )
    for name, s in by_name.items():
        for a in s.after:
            if a in by_name:
                deps[name].append(a)
            else:
                problems.append(f"stage {name!r}{origin(name)} lists {unknown_name('stage', a, by_name)} in after")
    if problems:
        raise PipelineError(f"{len(problems)} problem(s) in the pipeline: {problems[0]}", problems)
    for name, preds in deps.items():
        if len(preds) > 1:
            deps[name] = sorted(set(preds))
    successors: dict[str, list[str]] = {name: [] for name in by_name}
    for name, preds in deps.items():
        for p in preds:
            successors[p].append(name)
    order = _topological_order(deps, successors, origin)
    return Dag(stages=by_name, deps=deps, roles=roles, initial=initial, order=order, successors=successors)


def _roles(
    stages: Mapping[str, Stage], initial: frozenset[str], origin: Callable[[str], str], problems: list[str]
) -> dict[str, ArtifactRoles]:
    roles: dict[str, ArtifactRoles] = {a: ArtifactRoles(creator=INITIAL) for a in sorted(initial)}
    for name, s in stages.items():
        req = s.requires
        for a in s.provides:
            role = roles.get(a)
            if role is None:
                role = roles[a] = ArtifactRoles()
            if a in req:
                role.updaters.append(name)
            elif role.creator is None:
                role.creator = name
            else:
                first = "the initial artifacts" if role.creator == INITIAL else \
                    f"stage {role.creator!r}{origin(role.creator)}"
                problems.append(
                    f"artifact {a!r} is created by two stages: {first} and stage {name!r}{origin(name)} "
                    "(only one stage may provide an artifact without requiring it)"
                )
        for a in s.requires:
            if a not in s.provides:
                role = roles.get(a)
                if role is None:
                    role = roles[a] = ArtifactRoles()
                role.readers.append(name)
    return roles


def _topological_order(
    deps: Mapping[str, list[str]], successors: Mapping[str, list[str]], origin: Callable[[str], str]
) -> list[str]:
    """Kahn's algorithm in declaration order (deterministic); graphlib only to name a cycle's path."""
    waiting = {name: len(preds) for name, preds in deps.items()}
    ready = deque(name for name, n in waiting.items() if n == 0)
    order: list[str] = []
    while ready:
        name = ready.popleft()
        order.append(name)
        for nxt in successors[name]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    if len(order) == len(deps):
        return order
    stuck = {name: [p for p in deps[name] if waiting[p]] for name in deps if waiting[name]}
    try:
        graphlib.TopologicalSorter(stuck).prepare()
        raise AssertionError("unreachable: Kahn's algorithm left stages but graphlib found no cycle")
    except graphlib.CycleError as exc:
        cycle: list[str] = list(exc.args[1])
        path = " -> ".join(f"{n}{origin(n)}" for n in cycle)
        raise CycleError(f"the stages form a cycle: {path}", cycle) from None


def describe(dag: Dag, origins: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready description of the DAG."""
    return {
        "stages": [
            {
                "name": n, "requires": list(dag.stages[n].requires), "provides": list(dag.stages[n].provides),
                "after": list(dag.deps[n]), "plugin": getattr(origins.get(n), "plugin", None),
            }
            for n in dag.order
        ],
        "initial": sorted(dag.initial),
    }
