"""The author kit (``stagekit.testing``): what a plugin's tests lean on must refuse what a run refuses."""

from __future__ import annotations

import pytest

from stagekit import Host, PipelineError, stage
from stagekit.testing import check_plugin_conformance, isolated_host, run_one_stage


@stage(requires=["prices"], provides=["smooth"], params={"window": 2})
def moving_average(prices: list[float], window: int) -> list[float]:
    return [sum(prices[i - window + 1 : i + 1]) / window for i in range(window - 1, len(prices))]


def test_run_stage_takes_params_over_the_stage_defaults() -> None:
    assert run_one_stage(moving_average, prices=[1.0, 2.0, 3.0]) == {"smooth": [1.5, 2.5]}
    assert run_one_stage(moving_average, params={"window": 3}, prices=[1.0, 2.0, 3.0]) == {"smooth": [2.0]}


def test_run_stage_refuses_a_param_the_stage_does_not_take() -> None:
    with pytest.raises(PipelineError, match=r"stage 'moving_average' has no param 'widow' \(did you mean 'window'"):
        run_one_stage(moving_average, params={"widow": 3}, prices=[1.0])


def test_run_stage_refuses_unknown_and_missing_artifacts() -> None:
    with pytest.raises(PipelineError, match=r"unknown artifact 'price' \(did you mean 'prices'\?\) for stage"):
        run_one_stage(moving_average, price=[1.0])
    with pytest.raises(PipelineError, match="requires artifact 'prices', which was not given"):
        run_one_stage(moving_average)


def test_the_isolated_host_is_host_isolated() -> None:
    host = isolated_host()
    assert [r.name for r in host.records] == [r.name for r in Host.isolated().records]
    assert {r.distribution for r in host.records if r.status == "loaded"} == {"stagekit"}  # nothing installed


def test_conformance_names_a_distribution_that_is_not_installed() -> None:
    assert check_plugin_conformance("stagekit-nope") == [
        "distribution 'stagekit-nope' has no entry point in group 'stagekit' (is it installed?)"]
