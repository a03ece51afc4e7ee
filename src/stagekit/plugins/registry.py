"""What the registration hooks produced — stages, merges, executors — each with its provenance.

The host owns names: a stage name or an executor name registered twice is an error naming both plugins and
their distributions, so a user knows which one to uninstall or block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

from stagekit._text import unknown_name
from stagekit._typedispatch import type_name
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
    codecs: list[tuple[type | str, Any, Provenance]] = attrs.field(factory=list)
    formats: dict[str, Any] = attrs.field(factory=dict)
    format_origins: dict[str, Provenance] = attrs.field(factory=dict)

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

    def add_codec(self, value_type: type | str, codec: Any, origin: Provenance) -> None:
        if not isinstance(value_type, type | str):
            raise RegistrationError(f"{origin} registered a codec for {value_type!r}, which is neither a class nor "
                                    "a 'module.QualName' string")
        self.codecs.append((value_type, codec, origin))

    def add_format(self, name: str, file_format: Any, origin: Provenance) -> None:
        if not isinstance(name, str) or not name:
            raise RegistrationError(f"{origin} registered a catalog format with an invalid name {name!r}")
        if name in self.formats:
            raise RegistrationError(
                f"catalog format {name!r} is registered twice: by {self.format_origins[name]} and by {origin}")
        self.formats[name] = file_format
        self.format_origins[name] = origin

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
        for name in other.formats:
            if name in self.formats:
                self.add_format(name, other.formats[name], other.format_origins[name])
        for value_type, merge, origin in other.merges:
            self.add_merge(value_type, merge, origin)
        for value_type, codec, origin in other.codecs:
            self.add_codec(value_type, codec, origin)
        for name, file_format in other.formats.items():
            self.add_format(name, file_format, other.format_origins[name])

    # --- reading --------------------------------------------------------------------------------------

    def summary(self) -> dict[str, list[str]]:
        """What is registered, by kind: stage names, merged type names, executor names (for listings)."""
        found = {"stages": list(self.stages), "merges": [_type_label(t) for t, _, _ in self.merges],
                 "executors": list(self.executors), "codecs": [_type_label(t) for t, _, _ in self.codecs],
                 "formats": list(self.formats)}
        return {kind: names for kind, names in found.items() if names}

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


def _type_label(value_type: type | str) -> str:
    return value_type if isinstance(value_type, str) else type_name(value_type)


class MergeClaims:
    """The merges claimed so far while plugins load: a second claim on one type fails the later plugin, and
    all of that plugin's merges are left out (a trial table raises before anything is accepted)."""

    def __init__(self) -> None:
        self._accepted: list[tuple[type | str, Callable[[Any, list[Any]], Any], Provenance]] = []

    def extend(self, merges: Iterable[tuple[type | str, Callable[[Any, list[Any]], Any], Provenance]]) -> None:
        from stagekit.merge.table import MergeTable

        trial, added = MergeTable(), list(merges)
        for value_type, merge, origin in [*self._accepted, *added]:
            trial.add(value_type, merge, str(origin))
        self._accepted += added
