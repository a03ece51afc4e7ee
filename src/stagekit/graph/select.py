"""Selecting stages from a registry: by name, by tag, or targets with everything upstream of them.

Upstream follows the same artifact roles the DAG is built from (:func:`stagekit.graph.dag.artifact_roles`),
iteratively: a 100,000-stage chain selects without recursion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stagekit._text import unknown_name
from stagekit.errors import PipelineError
from stagekit.graph.dag import ArtifactRoles, artifact_roles
from stagekit.stage import Stage


def select_stages(
    stages: Mapping[str, Stage],
    names: Iterable[str] = (),
    tags: Iterable[str] = (),
    targets: Iterable[str] = (),
    given: Iterable[str] = (),
) -> list[Stage]:
    """Stages by name, by tag, and targets with everything upstream of them; all if nothing is given.

    Upstream stops at the ``given`` artifacts (the initial ones): their creators are not pulled in.
    """
    names, tags, targets = list(names), list(tags), list(targets)
    if not (names or tags or targets):
        return list(stages.values())
    problems = [unknown_name("stage", n, stages) for n in [*names, *targets] if n not in stages]
    known_tags = {t for s in stages.values() for t in s.tags}
    problems += [unknown_name("tag", t, known_tags) for t in tags if t not in known_tags]
    if problems:
        raise PipelineError(problems[0], problems)
    chosen = set(names) | {s.name for s in stages.values() if set(s.tags) & set(tags)}
    chosen |= upstream(stages, targets, given)
    return [s for s in stages.values() if s.name in chosen]


def upstream(stages: Mapping[str, Stage], targets: Iterable[str], given: Iterable[str] = ()) -> set[str]:
    """The targets and every stage they depend on, through artifacts and ``after``.

    A ``given`` artifact's creators are not pulled in (its updaters still are). An updater of X pulls in only
    X's creator (its siblings run concurrently with it, not before). Where several stages could create one
    artifact (alternative sources), only those whose inputs can be had are pulled in.
    """
    given = set(given)
    roles = artifact_roles(stages.values())
    creators = {a: _usable_creators(stages, role, given) if a not in given else [] for a, role in roles.items()}
    seen: set[str] = set()
    todo = list(targets)
    while todo:
        name = todo.pop()
        if name in seen or name not in stages:
            continue
        seen.add(name)
        st = stages[name]
        todo.extend(st.after)
        for a in st.requires:
            todo.extend(creators.get(a, ()))
            if a not in st.provides:  # a reader sees every updater's work
                todo.extend(roles[a].updaters)
    return seen


def _usable_creators(stages: Mapping[str, Stage], role: ArtifactRoles, given: set[str]) -> list[str]:
    if len(role.creators) < 2:
        return role.creators
    reachable = reachable_artifacts(stages, given)
    usable = [c for c in role.creators if all(r in reachable for r in stages[c].requires)]
    return usable or role.creators  # none usable: keep them all, and let DAG validation say what is wrong


def reachable_artifacts(stages: Mapping[str, Stage], given: Iterable[str]) -> set[str]:
    """Every artifact some chain of the stages can produce from ``given`` (a fixed point)."""
    have, pending = set(given), list(stages.values())
    while True:
        ready = [s for s in pending if all(r in have for r in s.requires)]
        if not ready:
            return have
        for s in ready:
            have.update(s.provides)
        done = {id(s) for s in ready}
        pending = [s for s in pending if id(s) not in done]
