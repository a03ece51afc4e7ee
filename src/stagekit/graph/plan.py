"""Which version of each artifact every stage sees, decided statically from the DAG.

A *version* of artifact X is what one writer of X produced, or the merge of several concurrent writers.
A stage sees the latest writers of X among its ancestors; when there are several (concurrent updaters whose
branches join here) it sees their three-way merge against their nearest common ancestor's version — the
artifact's value at the join's immediate dominator in X's history. Because this is decided from the DAG
alone, the result never depends on which branch finished first, nor on the executor.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import attrs

from stagekit.graph.dag import INITIAL, Dag


@attrs.frozen
class Merged:
    """The merge of concurrent writers (sorted by stage name: the canonical branch order) over ``base``."""

    writers: tuple[str, ...]
    base: Version


Version = str | Merged  # a writer's stage name (INITIAL for the initial artifacts), or a merge


@attrs.define
class VersionPlan:
    inputs: dict[str, list[tuple[str, Version]]]  # stage -> (artifact, version) for each required artifact
    ancestors: dict[str, dict[str, frozenset[str]]]  # artifact -> writer -> the writers of it before it

    def final(self, artifact: str, done: Collection[str] | None = None) -> Version | None:
        """The version of ``artifact`` after the run (or after only the ``done`` writers ran)."""
        anc = self.ancestors[artifact]
        if len(anc) == 1:  # the common case: one writer
            (writer,) = anc
            return writer if done is None or writer == INITIAL or writer in done else None
        writers = [w for w in anc if done is None or w == INITIAL or w in done]
        return self._version(artifact, writers) if writers else None

    def _version(self, artifact: str, writers: Iterable[str]) -> Version:
        return version_of(self.ancestors[artifact], writers)


def version_of(anc: Mapping[str, frozenset[str]], writers: Iterable[str]) -> Version:
    latest = _maximal(anc, writers)
    if len(latest) == 1:
        return latest[0]
    common = frozenset.intersection(*(anc[w] for w in latest))
    return Merged(tuple(sorted(latest)), version_of(anc, common))


def _maximal(anc: Mapping[str, frozenset[str]], writers: Iterable[str]) -> list[str]:
    ws = set(writers)
    before = set().union(*(anc[w] & ws for w in ws)) if ws else set()
    return sorted(ws - before)


def plan_versions(dag: Dag) -> VersionPlan:
    position = {name: i for i, name in enumerate(dag.order)}
    successors = dag.successors
    ancestors: dict[str, dict[str, frozenset[str]]] = {}
    none: frozenset[str] = frozenset()
    for artifact, role in dag.roles.items():
        creator = role.creator
        if not role.updaters:  # the common case: one writer
            ancestors[artifact] = {creator: none} if creator is not None else {}
            continue
        anc: dict[str, frozenset[str]] = {}
        if creator is not None:
            anc[creator] = none
        base = frozenset([creator]) if creator is not None else none
        ordered = _order_among(role.updaters, successors, position)
        for u in role.updaters:
            anc[u] = base | ordered.get(u, none)
        ancestors[artifact] = anc
    inputs: dict[str, list[tuple[str, Version]]] = {}
    for name in dag.order:
        s = dag.stages[name]
        plan: list[tuple[str, Version]] = []
        for a in s.requires:
            anc = ancestors[a]
            if len(anc) == 1 or (len(anc) == 2 and name in anc):  # one writer before this stage
                plan.append((a, dag.roles[a].creator or INITIAL))
                continue
            writers = anc[name] if name in anc else anc.keys()  # an updater sees what came before it
            plan.append((a, version_of(anc, writers)))
        inputs[name] = plan
    return VersionPlan(inputs=inputs, ancestors=ancestors)


def _order_among(
    updaters: list[str], successors: Mapping[str, list[str]], position: Mapping[str, int]
) -> dict[str, frozenset[str]]:
    """For each updater, the other updaters that reach it through the DAG (a bounded forward search)."""
    if len(updaters) < 2:
        return {}
    members = set(updaters)
    horizon = max(position[u] for u in updaters)
    before: dict[str, set[str]] = {u: set() for u in updaters}
    for u in updaters:
        seen = {u}
        todo = [u]
        while todo:
            for nxt in successors[todo.pop()]:
                if nxt in seen or position[nxt] > horizon:
                    continue
                seen.add(nxt)
                todo.append(nxt)
                if nxt in members:
                    before[nxt].add(u)
    return {u: frozenset(b) for u, b in before.items()}
