"""Every hook spec is exercised: a plugin implementing it is loaded by a real host, the hook is called with the
arguments its spec documents, and what it returns takes effect. A spec nobody exercises is a spec that rots,
so a new spec without an exercise here fails ``test_every_hook_spec_is_exercised``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import attrs
import pytest

import sample_stages as ss
from stagekit import ContractError, Host, Pipeline, SequentialExecutor, StageError, hookimpl, hookspecs, stage


def host(*plugins: object) -> Host:
    return Host(plugins=[(f"probe{i}", p) for i, p in enumerate(plugins)], autoload=False, env={}, strict=True)


class Calls:
    """A plugin that records each call of the hooks it implements, with its keyword arguments."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def record(self, hook: str, **kwargs: Any) -> None:
        self.seen.append((hook, kwargs))

    def names(self) -> list[str]:
        return [h for h, _ in self.seen]


# --- registration hooks --------------------------------------------------------------------------------


def exercise_register_stages() -> None:
    class Plugin:
        @hookimpl
        def stagekit_register_stages(self, register: Callable[..., None]) -> None:
            register(stage(lambda: 1, name="registered", provides=["x"]))

    h = host(Plugin())
    assert list(h.registry.stages) == ["registered"]
    assert Pipeline.from_host(h).run().artifacts["x"] == 1


@attrs.frozen
class Tally:
    count: int


def exercise_register_merges() -> None:
    merged: list[tuple[Any, list[Any]]] = []

    def add_up(base: Tally, branches: list[Tally]) -> Tally:
        merged.append((base, branches))
        return Tally(base.count + sum(b.count - base.count for b in branches))

    class Plugin:
        @hookimpl
        def stagekit_register_merges(self, register: Callable[..., None]) -> None:
            register(Tally, add_up)

    stages = [stage(lambda t: Tally(t.count + 1), name="one", requires=["t"], provides=["t"]),
              stage(lambda t: Tally(t.count + 2), name="two", requires=["t"], provides=["t"])]
    result = Pipeline(stages, host=host(Plugin())).run({"t": Tally(10)})
    assert result.artifacts["t"] == Tally(13)
    assert merged == [(Tally(10), [Tally(11), Tally(12)])]


def exercise_register_executors() -> None:
    made: list[dict[str, Any]] = []

    def factory(workers: int | None = None, host: Any = None, **options: Any) -> SequentialExecutor:
        made.append({"workers": workers, "host": host, **options})
        return SequentialExecutor(workers)

    class Plugin:
        @hookimpl
        def stagekit_register_executors(self, register: Callable[..., None]) -> None:
            register("probe", factory)

    result = Pipeline([ss.make], host=host(Plugin())).run(executor="probe", workers=2,
                                                          executor_options={"flavour": "x"})
    assert result.executor == "probe" and result.artifacts["d"] == {"base": 1}
    assert made[0]["workers"] == 2 and made[0]["flavour"] == "x" and made[0]["host"] is not None


def exercise_register_codecs() -> None:
    codec = object()

    class Plugin:
        @hookimpl
        def stagekit_register_codecs(self, register: Callable[..., None]) -> None:
            register(Tally, codec)

    h = host(Plugin())
    assert [(t, c, o.plugin) for t, c, o in h.registry.codecs if t is Tally] == [(Tally, codec, "probe0")]
    assert h.record("probe0").registered["codecs"] == [f"{Tally.__module__}.Tally"]


def exercise_register_formats() -> None:
    fmt = object()

    class Plugin:
        @hookimpl
        def stagekit_register_formats(self, register: Callable[..., None]) -> None:
            register("probe-format", fmt)

    h = host(Plugin())
    assert h.registry.formats["probe-format"] is fmt
    assert h.registry.format_origins["probe-format"].plugin == "probe0"


# --- contract hooks ------------------------------------------------------------------------------------


class Positive:
    """A schema kind no built-in validator knows: only the probe plugin's validator can check it."""


def exercise_validate_artifact() -> None:
    calls = Calls()

    class Plugin:
        @hookimpl
        def stagekit_validate_artifact(self, stage: Any, artifact: str, value: Any, schema: Any,
                                       boundary: str) -> ContractError | bool | None:
            if not isinstance(schema, Positive):
                return None
            calls.record("validate", stage=stage.name, artifact=artifact, value=value, boundary=boundary)
            return True if value > 0 else ContractError(f"{artifact} = {value} is not positive")

    make = stage(lambda start: start, name="make", requires=["start"], provides=["n"], outputs={"n": Positive()})
    use = stage(lambda n: n * 2, name="use", requires=["n"], provides=["m"], inputs={"n": Positive()})
    pipeline = Pipeline([make, use], host=host(Plugin()))
    assert pipeline.run({"start": 3}).artifacts["m"] == 6
    assert [(k["stage"], k["boundary"]) for _, k in calls.seen] == [("make", "output"), ("use", "input")]
    with pytest.raises(ContractError, match="n = -1 is not positive") as failed:
        pipeline.run({"start": -1})
    assert failed.value.result.stages["use"].status == "cancelled"


def exercise_check_compatible() -> None:
    calls = Calls()

    class Plugin:
        @hookimpl
        def stagekit_check_compatible(self, producer: Any, consumer: Any, artifact: str, produced: Any,
                                      required: Any) -> list[str] | None:
            calls.record("compatible", producer=producer.name, consumer=consumer.name, artifact=artifact)
            return [f"{producer.name} and {consumer.name} disagree on {artifact!r}"]

        @hookimpl
        def stagekit_validate_artifact(self, **kwargs: Any) -> bool:
            return True

    make = stage(lambda: 1, name="make", provides=["n"], outputs={"n": Positive()})
    use = stage(lambda n: n, name="use", requires=["n"], provides=["m"], inputs={"n": Positive()})
    pipeline = Pipeline([make, use], host=host(Plugin()))
    assert pipeline.check() == ["make and use disagree on 'n'"]
    with pytest.raises(ContractError, match="contracts disagree between stages; nothing was run"):
        pipeline.run()
    assert ("compatible", {"producer": "make", "consumer": "use", "artifact": "n"}) in calls.seen


# --- lifecycle hooks: fired in the driver under every executor ----------------------------------------


class Lifecycle(Calls):
    @hookimpl
    def stagekit_before_run(self, run: Any) -> None:
        self.record("before_run", executor=run.executor, stages=run.stages)

    @hookimpl
    def stagekit_after_run(self, run: Any, result: Any) -> None:
        self.record("after_run", ok=result.ok)

    @hookimpl
    def stagekit_before_stage(self, run: Any, stage: Any) -> None:
        self.record("before_stage", stage=stage.name)

    @hookimpl
    def stagekit_after_stage(self, run: Any, stage: Any, record: Any) -> None:
        self.record("after_stage", stage=stage.name, status=record.status, provided=record.provided)

    @hookimpl
    def stagekit_on_stage_error(self, run: Any, stage: Any, error: BaseException) -> None:
        self.record("on_stage_error", stage=stage.name, error=type(error).__name__)


def run_lifecycle(executor: str) -> Lifecycle:
    plugin = Lifecycle()
    bad = stage(ss.boom, name="bad", requires=["d"], provides=["e"])
    with pytest.raises(StageError):
        Pipeline([ss.make, bad], host=host(plugin)).run(executor=executor)
    return plugin


def exercise_lifecycle(executor: str) -> None:
    plugin = run_lifecycle(executor)
    assert plugin.names() == ["before_run", "before_stage", "after_stage", "before_stage", "on_stage_error",
                              "after_run"]
    assert plugin.seen[0][1] == {"executor": executor, "stages": ("make", "bad")}
    assert plugin.seen[2][1] == {"stage": "make", "status": "ok", "provided": ("d",)}
    assert plugin.seen[4][1] == {"stage": "bad", "error": "ValueError"}
    assert plugin.seen[5][1] == {"ok": False}


EXERCISES: dict[str, Callable[[str], None]] = {
    "stagekit_register_stages": lambda executor: exercise_register_stages(),
    "stagekit_register_merges": lambda executor: exercise_register_merges(),
    "stagekit_register_executors": lambda executor: exercise_register_executors(),
    "stagekit_register_codecs": lambda executor: exercise_register_codecs(),
    "stagekit_register_formats": lambda executor: exercise_register_formats(),
    "stagekit_validate_artifact": lambda executor: exercise_validate_artifact(),
    "stagekit_check_compatible": lambda executor: exercise_check_compatible(),
    "stagekit_before_run": exercise_lifecycle,
    "stagekit_after_run": exercise_lifecycle,
    "stagekit_before_stage": exercise_lifecycle,
    "stagekit_after_stage": exercise_lifecycle,
    "stagekit_on_stage_error": exercise_lifecycle,
}
LIFECYCLE = {n for n, f in EXERCISES.items() if f is exercise_lifecycle}
SPECS = sorted(n for n in dir(hookspecs) if n.startswith("stagekit_"))


def test_every_hook_spec_is_exercised() -> None:
    assert sorted(EXERCISES) == SPECS


@pytest.mark.parametrize("hook", sorted(set(SPECS) - LIFECYCLE))
def test_the_hook_is_called_and_takes_effect(hook: str) -> None:
    EXERCISES[hook]("sequential")


def test_the_lifecycle_hooks_fire_in_the_driver_under_every_executor(executor: str) -> None:
    exercise_lifecycle(executor)


def test_every_hook_is_prefixed_and_documented() -> None:
    for name in SPECS:
        spec = getattr(hookspecs, name)
        assert spec.__doc__, name
        assert list(inspect.signature(spec).parameters), name  # hooks are called by keyword
