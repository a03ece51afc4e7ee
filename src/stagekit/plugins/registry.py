"""What the registration hooks produced — stages, merges, executors — each with its provenance.

The host owns names: a stage name or an executor name registered twice is an error naming both plugins and
their distributions, so a user knows which one to uninstall or block.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from stagekit.errors import PipelineError, RegistrationError
from stagekit.stage import Stage

if TYPE_CHECKING:
    from stagekit.merge.table import MergeTable


@attrs.frozen
class Provenance:
    """Who registered something: the plugin name, and its distribution and version when installed."""

    plugin: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.distribution:
            return f"plugin {self.plugin!r} (distribution {self.distribution} {self.version or ''})".replace(
                " )", ")"
            )
        return f"plugin {self.plugin!r}"


IN_CODE = Provenance("<in code>")


@attrs.define
class Registry:
    """Stages, merges and executors by name, with who registered each."""

    stages: dict[str, Stage] = attrs.field(factory=dict)
    stage_origins: dict[str, Provenance] = attrs.field(factory=dict)
    executors: dict[str, Callable[..., Any]] = attrs.field(factory=dict)
    executor_origins: dict[str, Provenance] = attrs.field(factory=dict)
    merges: list[tuple[type | str, Callable[[Any, list[Any]], Any], Provenance]] = attrs.field(factory=list)
    _merge_table: MergeTable | None = attrs.field(default=None, repr=False)

    # --- adding ---------------------------------------------------------------------------------------

    def add_stage(self, stage: Stage, origin: Provenance) -> None:
        if not isinstance(stage, Stage):
            raise RegistrationError(
                f"{origin} registered {stage!r}, which is not a Stage (decorate the function with @stage)"
            )
        if stage.name in self.stages:
            raise RegistrationError(
                f"stage {stage.name!r} is registered twice: by {self.stage_origins[stage.name]} and by "
                f"{origin}; block one of them (stagekit --disable NAME, or STAGEKIT_DISABLE=NAME)"
            )
        self.stages[stage.name] = stage
        self.stage_origins[stage.name] = origin

    def add_executor(self, name: str, factory: Callable[..., Any], origin: Provenance) -> None:
        if not isinstance(name, str) or not name:
            raise RegistrationError(f"{origin} registered an executor with an invalid name {name!r}")
        if name in self.executors:
            raise RegistrationError(
                f"executor {name!r} is registered twice: by {self.executor_origins[name]} and by {origin}"
            )
        self.executors[name] = factory
        self.executor_origins[name] = origin

    def add_merge(self, value_type: type | str, merge: Callable[[Any, list[Any]], Any], origin: Provenance) -> None:
        if not callable(merge):
            raise RegistrationError(f"{origin} registered a merge for {value_type!r} that is not callable")
        self.merges.append((value_type, merge, origin))
        self._merge_table = None

    def extend(self, other: Registry) -> None:
        """Add everything ``other`` holds, with its provenance; a duplicate is an error and adds nothing."""
        for name in other.stages:
            if name in self.stages:
                self.add_stage(other.stages[name], other.stage_origins[name])  # raises, naming both
        for name in other.executors:
            if name in self.executors:
                self.add_executor(name, other.executors[name], other.executor_origins[name])
        for name, st in other.stages.items():
            self.add_stage(st, other.stage_origins[name])
        for name, factory in other.executors.items():
            self.add_executor(name, factory, other.executor_origins[name])
        for value_type, merge, origin in other.merges:
            self.add_merge(value_type, merge, origin)

    # --- reading --------------------------------------------------------------------------------------

    @property
    def merge_table(self) -> MergeTable:
        """The merges as one dispatch table; building it reports two claims on one type."""
        if self._merge_table is None:
            from stagekit.merge.table import MergeTable

            table = MergeTable()
            for value_type, merge, origin in self.merges:
                table.add(value_type, merge, str(origin))
            self._merge_table = table
        return self._merge_table

    def origin(self, stage_name: str) -> Provenance:
        return self.stage_origins.get(stage_name, IN_CODE)

    def stage(self, name: str) -> Stage:
        try:
            return self.stages[name]
        except KeyError:
            raise PipelineError(unknown_name("stage", name, self.stages)) from None

    def select(
        self,
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
            return list(self.stages.values())
        problems = [unknown_name("stage", n, self.stages) for n in [*names, *targets] if n not in self.stages]
        known_tags = {t for s in self.stages.values() for t in s.tags}
        problems += [unknown_name("tag", t, known_tags) for t in tags if t not in known_tags]
        if problems:
            raise PipelineError(problems[0], problems)
        chosen = set(names) | {s.name for s in self.stages.values() if set(s.tags) & set(tags)}
        chosen |= self.upstream(targets, given)
        return [s for s in self.stages.values() if s.name in chosen]

    def upstream(self, targets: Iterable[str], given: Iterable[str] = ()) -> set[str]:
        """The targets and every stage they depend on, through artifacts and ``after`` (no recursion).

        A ``given`` artifact's creator is not pulled in (its updaters still are). Where several stages could
        create one artifact (alternative sources), only those whose inputs can be had are pulled in."""
        given = set(given)
        writers: dict[str, list[str]] = {}
        for s in self.stages.values():
            for a in s.provides:
                if a not in given or a in s.requires:
                    writers.setdefault(a, []).append(s.name)
        self._drop_unreachable_creators(writers, given)
        seen: set[str] = set()
        todo = list(targets)
        while todo:
            name = todo.pop()
            if name in seen or name not in self.stages:
                continue
            seen.add(name)
            st = self.stages[name]
            todo.extend(st.after)
            for a in st.requires:
                # an updater of X requires X too: it only pulls in X's creator and the updaters ordered before it
                todo.extend(w for w in writers.get(a, ()) if w != name and (a not in st.provides or
                                                                            a not in self.stages[w].requires))
        return seen


    def _drop_unreachable_creators(self, writers: dict[str, list[str]], given: set[str]) -> None:
        contested = [a for a, ws in writers.items() if sum(a not in self.stages[w].requires for w in ws) > 1]
        if not contested:
            return
        reachable = self.reachable_artifacts(given)
        for a in contested:
            creators = [w for w in writers[a] if a not in self.stages[w].requires]
            usable = [w for w in creators if all(r in reachable for r in self.stages[w].requires)]
            if usable:  # none usable: keep them all, and let DAG validation say what is wrong
                writers[a] = [w for w in writers[a] if w not in creators or w in usable]

    def reachable_artifacts(self, given: Iterable[str]) -> set[str]:
        """Every artifact some chain of registered stages can produce from ``given`` (a fixed point)."""
        have, pending = set(given), list(self.stages.values())
        while True:
            ready = [s for s in pending if all(r in have for r in s.requires)]
            if not ready:
                return have
            for s in ready:
                have.update(s.provides)
            done = {id(s) for s in ready}
            pending = [s for s in pending if id(s) not in done]


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    """A message for an unknown name, with the closest known names as suggestions."""
    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}"


def origins_of(registry: Registry | None, stages: Mapping[str, Stage]) -> dict[str, Provenance]:
    if registry is None:
        return {}
    return {n: registry.stage_origins[n] for n in stages if n in registry.stage_origins}
