"""End to end: the dataops stages as a stagekit Pipeline, contracts on, across executors."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
from stagekit_dataops.plugin import dataops_stages

from stagekit import ContractWarning, Pipeline
from stagekit.errors import ContractError
from stagekit.stage import Stage, stage


@pytest.mark.parametrize("executor", ["sequential", "thread"])
def test_pipeline_runs_every_stage_with_contracts(raw_dir: Path, executor: str) -> None:
    (raw_dir / "BAD.csv").write_text("date,symbol,close,volume\n2024-01-02,BAD,oops,1\n2024-01-03,BAD,5,1\n")
    result = Pipeline(dataops_stages()).run(artifacts={"raw_dir": str(raw_dir)}, executor=executor,
                                            contracts="strict")
    art = result.artifacts
    returns, volume, report = art["returns"], art["volume"], art["ingestion_report"]
    assert isinstance(returns.index, pd.DatetimeIndex) and returns.index.is_monotonic_increasing
    assert list(returns.columns) == ["BAD"] + [f"S000{i}" for i in range(6)]
    assert returns.shape == volume.shape
    bad = report[(report["file"] == "BAD.csv") & (report["level"] == "L1")].iloc[0]
    assert (bad["rows_in"], bad["rows_rejected"], bad["why"]) == (2, 1, "close is not a number (1 row)")
    assert set(report["level"]) == {"L0", "L1", "L2", "L3", "L4"}


def test_contract_modes_end_to_end(raw_dir: Path) -> None:
    # a check on align_calendar's input that real prices cannot meet (closes above a billion): found only
    # when data flows, since checks are not compared statically
    picky = _replace_input(dataops_stages(), "align_calendar", "prices", f"{__name__}:HUGE_CLOSES")
    with pytest.raises(ContractError, match=r"stage 'align_calendar' input 'prices' breaks its contract"):
        Pipeline(picky).run(artifacts={"raw_dir": str(raw_dir)}, contracts="strict")
    with pytest.warns(ContractWarning, match=r"column 'close'\s+greater_than\(1000000000.0\)"):
        result = Pipeline(picky).run(artifacts={"raw_dir": str(raw_dir)}, contracts="strict",
                                     stage_contracts={"align_calendar": "warn"})
    assert "returns" in result.artifacts
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = Pipeline(picky).run(artifacts={"raw_dir": str(raw_dir)}, contracts="off")
    assert "ingestion_report" in result.artifacts


def test_incompatible_contracts_are_refused_before_anything_runs(raw_dir: Path) -> None:
    picky = _replace_input(dataops_stages(), "align_calendar", "prices", f"{__name__}:NEEDS_EXTRA_COLUMN")
    with pytest.raises(ContractError) as info:
        Pipeline(picky).run(artifacts={"raw_dir": str(raw_dir)}, contracts="strict")
    assert ("stage 'clean_prices' -> stage 'align_calendar', artifact 'prices', column 'extra': the consumer "
            "needs it but the producer does not promise it") in str(info.value)
    assert Pipeline(picky).check(["raw_dir"]) == [str(info.value).splitlines()[1].strip()]


@pytest.mark.slow
def test_pipeline_under_the_process_executor(raw_dir: Path) -> None:
    result = Pipeline(dataops_stages()).run(artifacts={"raw_dir": str(raw_dir)}, executor="process",
                                            workers=2)
    report = result.artifacts["ingestion_report"]
    assert (report["rows_rejected"] == 0).all() and len(report) == 30  # the log travelled with its frames


def _replace_input(stages: list[Stage], name: str, artifact: str, schema: str) -> list[Stage]:
    out = []
    for s in stages:
        if s.name == name:
            s = stage(s.func, name=s.name, requires=s.requires, provides=s.provides, params=s.params,
                      tags=s.tags, inputs={**s.inputs, artifact: schema}, outputs=s.outputs)
        out.append(s)
    return out


_SCHEMAS: dict[str, object] = {}


def __getattr__(name: str) -> object:
    # test schemas, built on first use like the plugin's own lazily named ones (and then the same object)
    if name not in ("HUGE_CLOSES", "NEEDS_EXTRA_COLUMN"):
        raise AttributeError(name)
    if name not in _SCHEMAS:
        import pandera.pandas as pa

        _SCHEMAS["HUGE_CLOSES"] = pa.DataFrameSchema({"close": pa.Column(float, pa.Check.gt(1e9))})
        _SCHEMAS["NEEDS_EXTRA_COLUMN"] = pa.DataFrameSchema({"extra": pa.Column(float)})
    return _SCHEMAS[name]
