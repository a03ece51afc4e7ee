"""The DAG builds itself from what stages declare.

For each artifact X: its *creator* provides X without requiring it (at most one; the initial artifacts
count as one); an *updater* requires and provides X and runs after the creator; a *reader* requires X only
and runs after the creator and every updater, so it sees the merged value. ``after`` adds any other order.

Everything here is iterative: a 100,000-stage chain builds and validates without recursion.
"""

from __future__ import annotations

import graphlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from stagekit._text import unknown_name
from stagekit.errors import CycleError, PipelineError
from stagekit.stage import Stage

#: the pseudo-writer of the initial artifacts (no stage can have an empty name)
INITIAL = ""


@attrs.define
class ArtifactRoles:
    """Who writes and reads one artifact. ``creators`` provide it without requiring it (INITIAL for the initial
    artifacts): a valid DAG has at most one, several are alternative sources that a selection chooses among."""

    creators: list[str] = attrs.field(factory=list)
    updaters: list[str] = attrs.field(factory=list)  # require and provide it
    readers: list[str] = attrs.field(factory=list)  # require it only

    @property
    def creator(self) -> str | None:
        return self.creators[0] if self.creators else None

    @property
    def writers(self) -> list[str]:
        return self.creators[:1] + self.updaters


def artifact_roles(stages: Iterable[Stage], initial: Iterable[str] = ()) -> dict[str, ArtifactRoles]:
    """The roles every artifact has among ``stages``: the one rule both the DAG and a selection build on."""
    roles: dict[str, ArtifactRoles] = {a: ArtifactRoles(creators=[INITIAL]) for a in sorted(initial)}
    for s in stages:
        for a in s.provides:
            role = roles.get(a)
            if role is None:
                role = roles[a] = ArtifactRoles()
            (role.updaters if a in s.requires else role.creators).append(s.name)
        for a in s.requires:
            if a not in s.provides:
                role = roles.get(a)
                if role is None:
                    role = roles[a] = ArtifactRoles()
                role.readers.append(s.name)
    return roles


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

    def artifact_edges(self) -> Iterator[tuple[str, str, str]]:
        """(writer, reader, artifact) for every stage that reads a version another one wrote: an updater sees
        the artifact's creator, a reader every writer (INITIAL is the writer of the initial artifacts)."""
        for artifact, role in self.roles.items():
            for consumer in role.updaters + role.readers:
                producers = role.creators[:1] if consumer in role.updaters else role.writers
                for p in producers:
                    if p != consumer:
                        yield p, consumer, artifact

    def labelled_edges(self) -> list[tuple[str, str, str]]:
        """Every edge to draw, (from, to, label): artifact edges labelled by artifact (sorted by it, INITIAL
        as the source of the initial artifacts), then ``after`` edges that carry no artifact, unlabelled."""
        out = sorted(self.artifact_edges(), key=lambda e: e[2])
        labelled = {(p, c) for p, c, _ in out}
        out += [(src, dst, "") for src, dst in self.edges() if (src, dst) not in labelled]
        return out

    def producer_edges(self) -> Iterator[tuple[Stage, Stage, str]]:
        """(producer, consumer, artifact) between stages: what contract compatibility is checked along."""
        stages = self.stages
        for p, consumer, artifact in self.artifact_edges():
            if p:
                yield stages[p], stages[consumer], artifact


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
    roles = artifact_roles(by_name.values(), initial)
    problems += _creator_problems(roles, origin)
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


def _creator_problems(roles: Mapping[str, ArtifactRoles], origin: Callable[[str], str]) -> list[str]:
    problems = []
    for a, role in roles.items():
        if len(role.creators) > 1:
            first = role.creators[0]
            named = "the initial artifacts" if first == INITIAL else f"stage {first!r}{origin(first)}"
            for other in role.creators[1:]:
                problems.append(
                    f"artifact {a!r} is created by two stages: {named} and stage {other!r}{origin(other)} "
                    "(only one stage may provide an artifact without requiring it)"
                )
    return problems


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
