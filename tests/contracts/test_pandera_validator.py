"""The built-in pandera validator: failures named and shown, every frame library, static compatibility."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
import pyarrow
import pytest
from contract_samples import Prices, bad_prices, compute_returns, good_prices
from contract_samples import manager as _manager

from stagekit.contracts.checker import ContractChecker, static_problems
from stagekit.contracts.pandera_validator import stagekit_validate_artifact
from stagekit.errors import ContractError, StagekitError
from stagekit.stage import Stage, stage

# --- the issue's example, enforced ---------------------------------------------------------------------


def test_issue_example_checks_inputs_and_outputs() -> None:
    checker = ContractChecker(_manager().hook.stagekit_validate_artifact)
    prices = good_prices()
    assert checker.check(compute_returns, "input", {"prices": prices}) == []
    returns = compute_returns(prices=prices)
    assert checker.check(compute_returns, "output", {"returns": returns}) == []

    with pytest.raises(ContractError) as info:
        checker.check(compute_returns, "input", {"prices": bad_prices()})
    err = info.value
    assert isinstance(err, StagekitError) and isinstance(err, ValueError)
    assert (err.stage, err.artifact, err.boundary) == ("compute_returns", "prices", "input")
    assert len(err.failures) == 3  # the pandera failure cases: one null symbol, two non-positive closes


def test_error_message_names_everything_and_shows_failure_rows() -> None:
    checker = ContractChecker(_manager().hook.stagekit_validate_artifact)
    with pytest.raises(ContractError) as info:
        checker.check(compute_returns, "input", {"prices": bad_prices()})
    text = str(info.value)
    first, *rest = text.splitlines()
    assert "stage 'compute_returns' input 'prices' breaks its contract" in first
    assert "3 failures in 2 checks" in first
    summary = "\n".join(rest)
    assert "column 'close'   greater_than(0)  2" in summary
    assert "column 'symbol'  not_nullable     1" in summary
    assert "first failure cases (3 of 3):" in summary
    table = rest[rest.index("first failure cases (3 of 3):") + 1:]
    assert table[0].split() == ["column", "check", "index", "failure", "case"]
    rows = sorted(r.split() for r in table[1:])
    assert rows == [
        ["column", "'close'", "greater_than(0)", "1", "-1.0"],
        ["column", "'close'", "greater_than(0)", "3", "0.0"],
        ["column", "'symbol'", "not_nullable", "2", "null"],
    ]


def test_message_shows_only_the_first_failure_cases_but_counts_all() -> None:
    df = pd.DataFrame({"symbol": ["A"] * 50, "close": [-1.0] * 50})
    err = stagekit_validate_artifact(stage=compute_returns, artifact="prices", value=df, schema=Prices,
                                     boundary="output")
    assert isinstance(err, ContractError)
    text = str(err)
    assert "stage 'compute_returns' output 'prices'" in text
    assert "greater_than(0)  50" in text
    assert "first failure cases (5 of 50):" in text
    assert len(text.splitlines()) == 1 + 2 + 1 + 1 + 5


def test_missing_column_and_wrong_dtype_are_named() -> None:
    df = pd.DataFrame({"ticker": ["A"], "close": ["ten"]})
    err = stagekit_validate_artifact(stage=compute_returns, artifact="prices", value=df, schema=Prices,
                                     boundary="input")
    assert isinstance(err, ContractError)
    text = str(err)
    assert "column 'symbol'  column_in_dataframe" in text
    assert "column 'close'   dtype('float64')" in text


def test_dataframe_model_schema() -> None:
    class PriceModel(pa.DataFrameModel):
        symbol: str
        close: float = pa.Field(gt=0)

    checked = stage(lambda prices: prices, name="m", requires=["prices"], inputs={"prices": PriceModel})
    checker = ContractChecker(_manager().hook.stagekit_validate_artifact)
    assert checker.check(checked, "input", {"prices": good_prices()}) == []
    with pytest.raises(ContractError, match=r"model .*PriceModel.*2 failures in 2 checks"):
        checker.check(checked, "input", {"prices": bad_prices().iloc[1:3]})


def test_pyarrow_table_with_pandera_pyarrow_schema() -> None:
    import pandera.pyarrow as pap

    schema = pap.DataFrameSchema({"symbol": pap.Column(str), "close": pap.Column(float, pap.Check.gt(0))},
                                 name="ArrowPrices")
    st = stage(lambda prices: prices, name="arrow", requires=["prices"], inputs={"prices": schema})
    checker = ContractChecker(_manager().hook.stagekit_validate_artifact)
    assert checker.check(st, "input", {"prices": pyarrow.table(good_prices())}) == []
    bad = pyarrow.table({"symbol": ["A", None, "B"], "close": [1.0, 2.0, -3.0]})
    with pytest.raises(ContractError) as info:
        checker.check(st, "input", {"prices": bad})
    text = str(info.value)
    assert "stage 'arrow' input 'prices' breaks its contract (DataFrameSchema 'ArrowPrices')" in text
    assert "column 'symbol'  not_nullable" in text and "column 'close'   greater_than(0)" in text
    assert "-3.0" in text
    assert isinstance(info.value.failures, pyarrow.Table)


def test_value_of_the_wrong_frame_library_is_a_clear_error() -> None:
    err = stagekit_validate_artifact(stage=compute_returns, artifact="prices",
                                     value=pyarrow.table(good_prices()), schema=Prices, boundary="input")
    assert isinstance(err, ContractError)
    assert "it is a pyarrow.lib.Table, but the schema checks a pandas DataFrame" in str(err)
    assert "pandera.pyarrow" in str(err)
    err = stagekit_validate_artifact(stage=compute_returns, artifact="prices", value=None, schema=Prices,
                                     boundary="input")
    assert isinstance(err, ContractError) and "builtins.NoneType" in str(err)


def test_series_schema() -> None:
    positive = pa.SeriesSchema(float, pa.Check.ge(0), name="weights")
    st = stage(lambda weights: weights, name="w", requires=["weights"], inputs={"weights": positive})
    checker = ContractChecker(_manager().hook.stagekit_validate_artifact)
    assert checker.check(st, "input", {"weights": pd.Series([0.5, 0.5], name="weights")}) == []
    with pytest.raises(ContractError, match="greater_than_or_equal_to"):
        checker.check(st, "input", {"weights": pd.Series([0.5, -0.5], name="weights")})


def test_polars_frame_when_polars_is_installed() -> None:
    pl = pytest.importorskip("polars")
    import pandera.polars as pp

    schema = pp.DataFrameSchema({"symbol": pp.Column(str), "close": pp.Column(float, pp.Check.gt(0))})
    st = stage(lambda prices: prices, name="pl", requires=["prices"], inputs={"prices": schema})
    checker = ContractChecker(_manager().hook.stagekit_validate_artifact)
    assert checker.check(st, "input", {"prices": pl.DataFrame({"symbol": ["A"], "close": [1.0]})}) == []
    with pytest.raises(ContractError, match=r"column 'close'\s+greater_than\(0\)\s+1"):
        checker.check(st, "input", {"prices": pl.DataFrame({"symbol": ["A"], "close": [-1.0]})})


# --- static compatibility -------------------------------------------------------------------------------


def _edge(produced: Any, required: Any) -> list[tuple[Stage, Stage, str]]:
    producer = stage(lambda: None, name="load", provides=["prices"], outputs={"prices": produced})
    consumer = stage(lambda prices: None, name="model", requires=["prices"], inputs={"prices": required})
    return [(producer, consumer, "prices")]


def _problems(produced: Any, required: Any) -> list[str]:
    return static_problems(_edge(produced, required), _manager().hook.stagekit_check_compatible)


def test_static_missing_column() -> None:
    produced = pa.DataFrameSchema({"symbol": pa.Column(str)})
    assert _problems(produced, Prices) == [
        "stage 'load' -> stage 'model', artifact 'prices', column 'close': the consumer needs it but the "
        "producer does not promise it"
    ]
    optional = pa.DataFrameSchema({"symbol": pa.Column(str), "close": pa.Column(float, required=False)})
    assert _problems(optional, Prices) == [
        "stage 'load' -> stage 'model', artifact 'prices', column 'close': the consumer needs it but the "
        "producer declares it optional (required=False)"
    ]


def test_static_dtype_mismatch_and_coercion() -> None:
    produced = pa.DataFrameSchema({"symbol": pa.Column(str), "close": pa.Column("int64")})
    assert _problems(produced, Prices) == [
        "stage 'load' -> stage 'model', artifact 'prices', column 'close': the producer promises dtype int64 "
        "but the consumer requires float64"
    ]
    coercing = pa.DataFrameSchema({"symbol": pa.Column(str), "close": pa.Column(float, coerce=True)})
    assert _problems(produced, coercing) == []
    same_type = pa.DataFrameSchema({"symbol": pa.Column(str), "close": pa.Column("float64", pa.Check.lt(9))})
    assert _problems(same_type, Prices) == []  # checks are not compared, equivalent dtypes accepted


def test_static_nullable_into_non_nullable() -> None:
    produced = pa.DataFrameSchema({"symbol": pa.Column(str), "close": pa.Column(float, nullable=True)})
    assert _problems(produced, Prices) == [
        "stage 'load' -> stage 'model', artifact 'prices', column 'close': the producer allows nulls "
        "(nullable=True) but the consumer does not"
    ]
    assert _problems(Prices, produced) == []  # non-nullable into nullable is fine


def test_static_strict_consumer_regex_index_and_models() -> None:
    wide = pa.DataFrameSchema({"symbol": pa.Column(str), "close": pa.Column(float), "vol": pa.Column(float)})
    strict = pa.DataFrameSchema({"symbol": pa.Column(str), "close": pa.Column(float)}, strict=True)
    assert _problems(wide, strict) == [
        "stage 'load' -> stage 'model', artifact 'prices', column 'vol': the producer promises it but the "
        "consumer's strict schema forbids columns it does not declare"
    ]
    pattern = pa.DataFrameSchema({"ret_.*": pa.Column(float, regex=True)})
    assert _problems(pa.DataFrameSchema({"ret_1d": pa.Column(float)}), pattern) == []
    assert "matching this pattern" in _problems(pa.DataFrameSchema({"r": pa.Column(float)}), pattern)[0]
    by_date = pa.DataFrameSchema({"x": pa.Column(float)}, index=pa.Index("datetime64[ns]"))
    by_int = pa.DataFrameSchema({"x": pa.Column(float)}, index=pa.Index(int))
    assert _problems(by_int, by_date) == [
        "stage 'load' -> stage 'model', artifact 'prices', index: the producer promises dtype int64 but the "
        "consumer requires datetime64[ns]"
    ]

    class Out(pa.DataFrameModel):
        symbol: str

    class In(pa.DataFrameModel):
        symbol: str
        close: float

    assert len(_problems(Out, In)) == 1 and "column 'close'" in _problems(Out, In)[0]


def test_static_different_frame_libraries() -> None:
    import pandera.pyarrow as pap

    arrow = pap.DataFrameSchema({"symbol": pap.Column(str), "close": pap.Column(float)})
    assert _problems(arrow, Prices) == [
        "stage 'load' -> stage 'model', artifact 'prices': the producer promises a pyarrow Table, the "
        "consumer expects a pandas DataFrame"
    ]


def test_static_skips_unknown_and_identical_schemas() -> None:
    calls = []

    def compare(**kwargs: Any) -> list[str] | None:
        calls.append(kwargs)
        found: list[str] | None = _manager().hook.stagekit_check_compatible(**kwargs)
        return found

    assert static_problems(_edge(Prices, Prices), compare) == []  # the same object: nothing to compare
    assert static_problems(_edge({"close": float}, Prices), compare) == []  # nobody knows a dict schema
    assert len(calls) == 1
    assert static_problems(_edge(None, Prices), compare) == []
