from __future__ import annotations

import itertools
import pickle
import re
from typing import Any

import pytest

from stagekit import Stage, StageDefinitionError, hookimpl, stage


@stage(requires=["prices"], provides=["returns"], tags=["dataops"])
def compute_returns(prices: list[float]) -> list[float]:
    """Simple returns."""
    return [b / a - 1 for a, b in itertools.pairwise(prices)]


@stage(requires=["returns"], provides=["mean", "vol"], after=["compute_returns"], name="stats")
def stats(returns: list[float]) -> dict[str, float]:
    return {"mean": sum(returns) / len(returns), "vol": max(returns) - min(returns)}


def test_the_public_api_works_exactly_as_written() -> None:
    registered: list[Stage] = []

    @hookimpl
    def stagekit_register_stages(register: Any) -> None:
        register(compute_returns)
        register(stats)

    stagekit_register_stages(registered.append)
    assert [s.name for s in registered] == ["compute_returns", "stats"]
    assert compute_returns.requires == ("prices",) and compute_returns.provides == ("returns",)
    assert compute_returns.tags == ("dataops",)
    assert stats.after == ("compute_returns",)
    assert compute_returns.description == "Simple returns."


def test_a_stage_is_callable_and_shapes_its_outputs() -> None:
    assert compute_returns(prices=[1.0, 2.0]) == [1.0]
    assert compute_returns.outputs_from([1.0]) == {"returns": [1.0]}
    assert stats.outputs_from({"mean": 1, "vol": 2}) == {"mean": 1, "vol": 2}


@pytest.mark.parametrize(
    ("returned", "message"),
    [({"mean": 1}, "missing ['vol']"), ({"mean": 1, "vol": 2, "x": 3}, "undeclared ['x']"), (5, "mapping")],
)
def test_wrong_outputs_name_the_stage(returned: Any, message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)) as err:
        stats.outputs_from(returned)
    assert "'stats'" in str(err.value)


def test_a_stage_providing_nothing_must_return_none() -> None:
    sink = stage(lambda returns: None, name="sink", requires=["returns"])
    assert sink.outputs_from(None) == {}
    with pytest.raises(TypeError, match="provides nothing"):
        sink.outputs_from(3)


def test_stages_are_frozen_and_hash_by_name() -> None:
    with pytest.raises(AttributeError):
        compute_returns.name = "x"  # type: ignore[misc]
    assert hash(compute_returns) == hash("compute_returns")
    assert compute_returns == compute_returns.evolve()


def test_a_stage_pickles_by_reference() -> None:
    data = pickle.dumps(stats)
    assert b"tests.test_stage:stats" in data or b"test_stage:stats" in data
    copy = pickle.loads(data)
    assert copy.name == "stats" and copy.callable(returns=[1.0, 3.0]) == {"mean": 2.0, "vol": 2.0}


def test_a_lazy_reference_imports_only_when_called() -> None:
    lazy = stage("json:dumps", name="dump", requires=["obj"], provides=["text"])
    assert lazy.func == "json:dumps"
    assert lazy(obj=[1]) == "[1]"


def test_a_lazy_reference_to_a_stage_unwraps_its_function() -> None:
    module = __name__
    lazy = stage(f"{module}:compute_returns", requires=["prices"], provides=["returns"])
    assert lazy.name == "compute_returns"
    assert lazy(prices=[1.0, 1.5]) == [0.5]


def test_a_broken_lazy_reference_names_the_stage() -> None:
    lazy = stage("no_such_module_xyz:f", requires=[], provides=["x"])
    with pytest.raises(StageDefinitionError, match="stage 'f': cannot import 'no_such_module_xyz:f'"):
        lazy.callable  # noqa: B018


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requires": "prices"}, "must be a list of names"),
        ({"requires": ["a", "a"]}, "lists 'a' twice"),
        ({"provides": ["bad name"]}, "invalid name"),
        ({"name": "x y"}, "invalid stage name"),
        ({"after": ["f"]}, "lists itself"),
        ({"inputs": {"zzz": 1}}, "not in its requires"),
        ({"contract_mode": "loud"}, "contract_mode must be one of"),
        ({"timeout": 0}, "timeout must be a positive number of seconds, not 0"),
        ({"timeout": -1.5}, "timeout must be a positive number of seconds"),
        ({"timeout": float("inf")}, "timeout must be a positive number of seconds"),
        ({"timeout": "10"}, "timeout must be a number of seconds, not str"),
        ({"timeout": True}, "timeout must be a number of seconds, not bool"),
    ],
)
def test_bad_declarations_are_refused(kwargs: dict[str, Any], message: str) -> None:
    def f(**kw: Any) -> None:
        return None

    with pytest.raises(StageDefinitionError, match=message):
        stage(f, **kwargs)


def test_the_function_must_accept_its_artifacts_and_params() -> None:
    def f(a: int) -> int:
        return a

    with pytest.raises(StageDefinitionError, match="does not accept 'b'"):
        stage(f, requires=["a", "b"], provides=["c"])

    def g(a: int, window: int) -> int:
        return a

    with pytest.raises(StageDefinitionError, match="needs 'window'"):
        stage(g, requires=["a"], provides=["c"])
    ok = stage(g, requires=["a"], provides=["c"], params={"window": 3})
    assert ok.params == {"window": 3}


def test_a_timeout_is_a_field_that_travels() -> None:
    import pickle

    def f() -> int:
        return 1

    timed = stage(f, name="timed", provides=["x"], timeout=2)
    assert timed.timeout == 2.0 and isinstance(timed.timeout, float)
    assert timed.evolve(name="again").timeout == 2.0
    assert stage(compute_returns, requires=["prices"], provides=["returns"], timeout=1.5).timeout == 1.5
    assert pickle.loads(pickle.dumps(stage(compute_returns, requires=["prices"], provides=["r"],
                                           timeout=3))).timeout == 3.0


def test_returning_none_for_a_provided_artifact_fails_unless_its_type_admits_none() -> None:
    from typing import Any as AnyType
    from typing import Optional

    def none(**kw: Any) -> Any:
        return None

    with pytest.raises(TypeError, match="stage 'none' provides 'x' but returned None .a missing return"):
        stage(none, provides=["x"]).outputs_from(None)
    for declared in (int | None, Optional[int], AnyType, object, type(None), None):  # noqa: UP045
        assert stage(none, provides=["x"], types={"x": declared}).outputs_from(None) == {"x": None}
    assert stage(none, provides=["x"], types={"x": int}).outputs_from(0) == {"x": 0}
    two = stage(none, provides=["a", "b"], types={"a": int})
    with pytest.raises(TypeError, match="returned None for 'a', whose declared type does not admit None"):
        two.outputs_from({"a": None, "b": 1})
    assert two.outputs_from({"a": 1, "b": None}) == {"a": 1, "b": None}  # b's type is not declared
