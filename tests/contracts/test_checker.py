"""The contract checker: modes, one validation per value and schema, the mode of each consumer."""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
import warnings
from typing import Any

import pandera.pandas as pa
import pytest
from contract_samples import CountingValidate, Prices, bad_prices, compute_returns, good_prices
from contract_samples import manager as _manager

from stagekit import hookspecs
from stagekit.contracts import pandera_validator as contracts
from stagekit.contracts.checker import ContractChecker, static_problems
from stagekit.errors import ContractError, ContractModeError, ContractWarning, StageDefinitionError
from stagekit.stage import Stage, stage

# --- modes -------------------------------------------------------------------------------------------


def test_warn_mode_warns_and_returns_the_errors() -> None:
    checker = ContractChecker(_manager().hook.stagekit_validate_artifact, mode="warn")
    with pytest.warns(ContractWarning, match="stage 'compute_returns' input 'prices'"):
        errors = checker.check(compute_returns, "input", {"prices": bad_prices()})
    assert [e.artifact for e in errors] == ["prices"]


def test_warnings_can_be_left_to_the_caller() -> None:
    checker = ContractChecker(_manager().hook.stagekit_validate_artifact, mode="warn", emit_warnings=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        errors = checker.check(compute_returns, "input", {"prices": bad_prices()})
    assert [e.stage for e in errors] == ["compute_returns"]
    assert pickle.loads(pickle.dumps(ContractChecker(contracts.stagekit_validate_artifact,
                                                     emit_warnings=False))).emit_warnings is False


def test_off_mode_calls_nothing() -> None:
    validate = CountingValidate()
    checker = ContractChecker(validate, mode="off", stage_modes={"compute_returns": "strict"})
    assert checker.check(compute_returns, "input", {"prices": bad_prices()}) == []
    assert checker.check_static([(compute_returns, compute_returns, "prices")], lambda **kw: ["x"]) == []
    assert validate.calls == 0


def test_effective_mode_per_stage() -> None:
    declared_off = stage(compute_returns.func, name="declared_off", requires=["prices"],
                         inputs={"prices": Prices}, contract_mode="off")
    declared_warn = stage(compute_returns.func, name="declared_warn", requires=["prices"],
                          inputs={"prices": Prices}, contract_mode="warn")
    checker = ContractChecker(contracts.stagekit_validate_artifact, mode="strict",
                              stage_modes={"compute_returns": "warn", "declared_warn": "strict"})
    assert checker.mode_for(compute_returns) == "warn"  # the pipeline file's override wins over the run
    assert checker.mode_for(declared_off) == "off"  # declared on the stage, no override
    assert checker.mode_for(declared_warn) == "strict"  # the override wins over the declaration
    with pytest.warns(ContractWarning):
        assert len(checker.check(compute_returns, "input", {"prices": bad_prices()})) == 1
    assert checker.check(declared_off, "input", {"prices": bad_prices()}) == []
    with pytest.raises(ContractError):
        checker.check(declared_warn, "input", {"prices": bad_prices()})
    lenient = ContractChecker(contracts.stagekit_validate_artifact, mode="warn")
    assert lenient.mode_for(declared_off) == "off" and lenient.mode_for(compute_returns) == "warn"


def test_bad_modes_are_refused() -> None:
    with pytest.raises(ContractModeError, match=r"run's contract mode .* not 'loud'"):
        ContractChecker(contracts.stagekit_validate_artifact, mode="loud")
    with pytest.raises(ContractModeError, match="stage 'x'"):
        ContractChecker(contracts.stagekit_validate_artifact, stage_modes={"x": "sometimes"})


def test_several_failing_artifacts_make_one_error_listing_all() -> None:
    two = stage(lambda: None, name="two", provides=["a", "b"], outputs={"a": Prices, "b": Prices})
    checker = ContractChecker(_manager().hook.stagekit_validate_artifact)
    with pytest.raises(ContractError) as info:
        checker.check(two, "output", {"a": bad_prices(), "b": bad_prices()})
    err = info.value
    assert err.stage == "two" and err.boundary == "output"
    assert [e.artifact for e in err.failures] == ["a", "b"]
    assert "stage 'two': 2 output artifacts break their contracts ('a', 'b')" in str(err)
    assert "output 'a' breaks" in str(err) and "output 'b' breaks" in str(err)


def test_unknown_schema_is_an_error_naming_stage_and_artifact() -> None:
    st = stage(lambda prices: prices, name="odd", requires=["prices"], inputs={"prices": {"close": float}})
    checker = ContractChecker(_manager().hook.stagekit_validate_artifact)
    with pytest.raises(ContractError, match=r"stage 'odd' input 'prices': no contract validator knows"):
        checker.check(st, "input", {"prices": good_prices()})


def test_other_validators_plug_in_through_the_hook() -> None:
    class MinRows:
        def __init__(self, n: int) -> None:
            self.n = n

    class MinRowsPlugin:
        @hookspecs.hookimpl
        def stagekit_validate_artifact(self, stage: Stage, artifact: str, value: Any, schema: Any,
                                       boundary: str) -> ContractError | bool | None:
            if not isinstance(schema, MinRows):
                return None
            if len(value) >= schema.n:
                return True
            return ContractError(f"{artifact}: {len(value)} rows < {schema.n}", stage=stage.name,
                                 artifact=artifact, boundary=boundary)

    st = stage(lambda a, b: None, name="mixed", requires=["a", "b"], inputs={"a": MinRows(3), "b": Prices})
    checker = ContractChecker(_manager(MinRowsPlugin()).hook.stagekit_validate_artifact)
    assert checker.check(st, "input", {"a": [1, 2, 3], "b": good_prices()}) == []
    with pytest.raises(ContractError, match="a: 1 rows < 3"):
        checker.check(st, "input", {"a": [1], "b": good_prices()})


def test_lazy_schema_references_are_imported_when_checked() -> None:
    lazy = stage(lambda prices: None, name="lazy", requires=["prices"],
                 inputs={"prices": f"{__name__}:Prices"})
    eager = stage(lambda: None, name="eager", provides=["prices"], outputs={"prices": Prices})
    validate = CountingValidate()
    checker = ContractChecker(validate)
    prices = good_prices()
    checker.check(eager, "output", {"prices": prices})
    assert checker.check(lazy, "input", {"prices": prices}) == []
    assert validate.calls == 1  # the reference names the very same schema object: not checked again
    with pytest.raises(ContractError, match="stage 'lazy' input 'prices' breaks its contract"):
        checker.check(lazy, "input", {"prices": bad_prices()})
    assert static_problems([(eager, lazy, "prices")], _manager().hook.stagekit_check_compatible) == []


def test_a_schema_reference_that_cannot_be_imported_names_the_stage() -> None:
    broken = stage(lambda prices: None, name="broken", requires=["prices"],
                   inputs={"prices": "no_such_module_xyz:Prices"})
    checker = ContractChecker(_manager().hook.stagekit_validate_artifact)
    with pytest.raises(StageDefinitionError, match=r"stage 'broken' input 'prices': cannot import its"):
        checker.check(broken, "input", {"prices": good_prices()})
    producer = stage(lambda: None, name="p", provides=["prices"], outputs={"prices": Prices})
    problems = static_problems([(producer, broken, "prices")], _manager().hook.stagekit_check_compatible)
    assert len(problems) == 1 and "'no_such_module_xyz:Prices'" in problems[0]


# --- no double checking -------------------------------------------------------------------------------


def test_same_schema_on_same_object_is_checked_once_across_a_boundary() -> None:
    producer = stage(lambda: None, name="producer", provides=["prices"], outputs={"prices": Prices})
    consumer = stage(lambda prices: None, name="consumer", requires=["prices"], inputs={"prices": Prices})
    validate = CountingValidate()
    checker = ContractChecker(validate)
    prices = good_prices()
    checker.check(producer, "output", {"prices": prices})
    checker.check(consumer, "input", {"prices": prices})
    assert validate.calls == 1
    checker.check(consumer, "input", {"prices": prices.copy()})  # another object: checked
    assert validate.calls == 2
    other = pa.DataFrameSchema({"close": pa.Column(float)})
    consumer2 = stage(lambda prices: None, name="consumer2", requires=["prices"], inputs={"prices": other})
    checker.check(consumer2, "input", {"prices": prices})  # another schema
    assert validate.calls == 3


def test_a_cached_failure_still_fails_a_strict_consumer() -> None:
    producer = stage(lambda: None, name="producer", provides=["prices"], outputs={"prices": Prices},
                     contract_mode="warn")
    consumer = stage(lambda prices: None, name="consumer", requires=["prices"], inputs={"prices": Prices})
    validate = CountingValidate()
    checker = ContractChecker(validate)
    prices = bad_prices()
    with pytest.warns(ContractWarning, match="stage 'producer' output"):
        checker.check(producer, "output", {"prices": prices})
    with pytest.raises(ContractError) as info:
        checker.check(consumer, "input", {"prices": prices})
    assert validate.calls == 1
    err = info.value
    assert (err.stage, err.boundary) == ("consumer", "input")
    assert str(err).startswith("stage 'consumer' input 'prices' breaks its contract")
    assert "stage 'producer' output 'prices'" in str(err)


def test_concurrent_checks_of_one_value_validate_once() -> None:
    validate = CountingValidate(delay=0.05)
    checker = ContractChecker(validate)
    prices = good_prices()
    readers = [stage(lambda prices: None, name=f"reader{i}", requires=["prices"], inputs={"prices": Prices})
               for i in range(8)]
    results: list[list[ContractError]] = []

    def run(reader: Stage) -> None:
        results.append(checker.check(reader, "input", {"prices": prices}))

    threads = [threading.Thread(target=run, args=(s,)) for s in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[]] * 8
    assert validate.calls == 1


def test_a_dead_value_is_not_mistaken_for_a_new_one_with_the_same_id() -> None:
    validate = CountingValidate()
    checker = ContractChecker(validate)
    for _ in range(20):  # fresh frames often reuse the id of the one just freed
        checker.check(compute_returns, "input", {"prices": good_prices()})
    assert validate.calls == 20


def test_a_crashing_validator_propagates_and_is_not_cached() -> None:
    calls = []

    def broken(**kwargs: Any) -> Any:
        calls.append(kwargs["artifact"])
        raise RuntimeError("validator bug")

    checker = ContractChecker(broken)
    prices = good_prices()
    for _ in range(2):
        with pytest.raises(RuntimeError, match="validator bug"):
            checker.check(compute_returns, "input", {"prices": prices})
    assert calls == ["prices", "prices"]


def test_checker_pickles_without_its_cache_when_its_validator_does() -> None:
    checker = ContractChecker(contracts.stagekit_validate_artifact, mode="warn", stage_modes={"x": "off"})
    checker.check(compute_returns, "input", {"prices": good_prices()})
    clone = pickle.loads(pickle.dumps(checker))
    assert (clone.mode, clone.stage_modes) == ("warn", {"x": "off"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(clone.check(compute_returns, "input", {"prices": bad_prices()})) == 1
    assert [w.category for w in caught] == [ContractWarning]


# --- static compatibility under the consumers' modes ----------------------------------------


def _edge(produced: Any, required: Any) -> list[tuple[Stage, Stage, str]]:
    producer = stage(lambda: None, name="load", provides=["prices"], outputs={"prices": produced})
    consumer = stage(lambda prices: None, name="model", requires=["prices"], inputs={"prices": required})
    return [(producer, consumer, "prices")]


def test_check_static_follows_the_consumers_mode() -> None:
    produced = pa.DataFrameSchema({"symbol": pa.Column(str)})
    edges = _edge(produced, Prices)
    compare = _manager().hook.stagekit_check_compatible
    assert len(ContractChecker(contracts.stagekit_validate_artifact).check_static(edges, compare)) == 1
    warn = ContractChecker(contracts.stagekit_validate_artifact, stage_modes={"model": "warn"})
    with pytest.warns(ContractWarning, match="column 'close'"):
        assert warn.check_static(edges, compare) == []
    off = ContractChecker(contracts.stagekit_validate_artifact, stage_modes={"model": "off"})
    assert off.check_static(edges, compare) == []


# --- imports ------------------------------------------------------------------------------------------


def test_importing_contracts_imports_no_pandas_nor_pandera() -> None:
    code = (
        "import sys, stagekit, stagekit.contracts.checker\n"
        "heavy = ('pandas', 'pandera', 'pyarrow', 'polars')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
