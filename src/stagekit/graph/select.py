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
    *,
    plugin_of: Mapping[str, str] | None = None,
    plugins: Iterable[str] = (),
) -> list[Stage]:
    """Stages by name, by tag, and targets with everything upstream of them; all if nothing is given.

    Upstream stops at the ``given`` artifacts (the initial ones): their creators are not pulled in. Where
    several stages create an artifact upstream (plugins that never heard of each other may both provide
    ``metrics``), the creator is the one of a plugin the selection names (``plugin_of`` maps stage names to
    plugins; the named stages and targets name theirs, ``plugins`` adds more), else the only one whose inputs
    can be had; an ambiguity that remains is a ``PipelineError`` naming every candidate.
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
    plugin_of = plugin_of or {}
    preferred = {*plugins, *(plugin_of[n] for n in [*names, *targets] if n in plugin_of)}
    chosen |= upstream(stages, targets, given, Preference(plugin_of, preferred))
    return [s for s in stages.values() if s.name in chosen]


class Preference:
    """Which of several creators of one artifact a selection takes: those of the preferred plugins first."""

    def __init__(self, plugin_of: Mapping[str, str] | None = None, preferred: Iterable[str] = ()) -> None:
        self.plugin_of = plugin_of or {}
        self.preferred = set(preferred)

    def among(self, creators: list[str]) -> list[str]:
        mine = [c for c in creators if self.plugin_of.get(c) in self.preferred]
        return mine or creators

    def describe(self, name: str) -> str:
        plugin = self.plugin_of.get(name)
        return f"stage {name!r}" + (f" (plugin {plugin!r})" if plugin else "")


def upstream(stages: Mapping[str, Stage], targets: Iterable[str], given: Iterable[str] = (),
             prefer: Preference | None = None) -> set[str]:
    """The targets and every stage they depend on, through artifacts and ``after``.

    A ``given`` artifact's creators are not pulled in (its updaters still are). An updater of X pulls in only
    X's creator (its siblings run concurrently with it, not before). Where several stages could create one
    artifact (alternative sources), those of the preferred plugins are, else those whose inputs can be had;
    several left is an ambiguity, refused naming them.
    """
    given = set(given)
    prefer = prefer or Preference()
    roles = artifact_roles(stages.values())
    creators = {a: _usable_creators(stages, role, given, prefer) if a not in given else []
                for a, role in roles.items()}
    ambiguous: dict[str, list[str]] = {}
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
            found = creators.get(a, [])
            if len(found) > 1:
                ambiguous.setdefault(a, found)
            todo.extend(found)
            if a not in st.provides:  # a reader sees every updater's work
                todo.extend(roles[a].updaters)
    if ambiguous:
        problems = [f"artifact {a!r} needed upstream has several creators: "
                    f"{' and '.join(prefer.describe(c) for c in found)}; choose one: name its plugin in the "
                    "pipeline (plugins = [...] in [pipeline], or Pipeline.from_host(..., plugins=[...])), or "
                    "select the stage by name" for a, found in sorted(ambiguous.items())]
        raise PipelineError(problems[0], problems)
    return seen


def downstream(stages: Mapping[str, Stage], starts: Iterable[str]) -> set[str]:
    """``starts`` and every stage that depends on them, through artifacts and ``after`` (a fixed point)."""
    chosen = set(starts)
    made = {a for n in chosen for a in stages[n].provides}
    changed = True
    while changed:
        changed = False
        for s in stages.values():
            if s.name not in chosen and (made.intersection(s.requires) or chosen.intersection(s.after)):
                chosen.add(s.name)
                made.update(s.provides)
                changed = True
    return chosen


def narrow(stages: Iterable[Stage], from_stages: Iterable[str] | None, to_stages: Iterable[str] | None) -> list[str]:
    """The names of ``stages`` downstream of (and including) ``from_stages`` and upstream of ``to_stages``;
    an unknown name is a :class:`PipelineError` naming close matches."""
    by_name = {s.name: s for s in stages}
    asked = [*(from_stages or ()), *(to_stages or ())]
    problems = [unknown_name("stage", n, by_name) for n in asked if n not in by_name]
    if problems:
        raise PipelineError(problems[0], problems)
    chosen = set(by_name)
    if from_stages is not None:
        chosen &= downstream(by_name, from_stages)
    if to_stages is not None:
        chosen &= upstream(by_name, to_stages)
    return [name for name in by_name if name in chosen]


def _usable_creators(stages: Mapping[str, Stage], role: ArtifactRoles, given: set[str],
                     prefer: Preference) -> list[str]:
    if len(role.creators) < 2:
        return role.creators
    candidates = prefer.among(role.creators)
    if len(candidates) < 2:
        return candidates
    reachable = reachable_artifacts(stages, given)
    usable = [c for c in candidates if all(r in reachable for r in stages[c].requires)]
    return usable or candidates  # none usable: keep them all, and the ambiguity names them


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
