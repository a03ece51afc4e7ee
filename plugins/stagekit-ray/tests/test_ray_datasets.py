"""Ray Datasets as artifacts: contracts checked per batch, lazily, as the data streams."""

from __future__ import annotations

from typing import Any

import pytest
import ray_stages as rs
import stagekit_ray.plugin

from stagekit import Host, Pipeline
from stagekit.errors import ContractError

pytestmark = pytest.mark.ray


def pipeline(*stages: Any) -> Pipeline:
    return Pipeline(list(stages), host=Host(plugins=[stagekit_ray.plugin], autoload=False, env={}))


def test_a_valid_dataset_streams_through_its_contract_unchanged(ray_cluster: Any) -> None:
    result = pipeline(rs.make_dataset, rs.total_x).run({"bad_row": -1}, executor="ray")
    assert result.artifacts["total"] == sum(range(1000))


def test_a_violation_inside_a_batch_fails_naming_stage_artifact_and_failures(ray_cluster: Any) -> None:
    with pytest.raises(ContractError) as info:
        pipeline(rs.make_dataset, rs.total_x).run({"bad_row": 613}, executor="ray")
    err = info.value
    assert (err.stage, err.artifact, err.boundary) == ("make_dataset", "ds", "output")
    text = str(err)
    assert "stage 'make_dataset' output 'ds' breaks its contract" in text
    assert "greater_than_or_equal_to(0)" in text and "-7.5" in text  # the batch's failure case
    assert "batch of 250 rows of the Ray Dataset, checked as it streamed" in text
    # lazily: the producer returned at once and passed; the batch failed where the data was consumed
    stages = err.result.stages
    assert stages["make_dataset"].status == "ok" and stages["total_x"].status == "failed"


def test_an_input_contract_on_a_dataset_is_checked_as_the_consumer_streams(ray_cluster: Any) -> None:
    with pytest.raises(ContractError) as info:
        pipeline(rs.make_dataset_unchecked, rs.total_x_checked).run({"bad_row": 5}, executor="ray")
    assert (info.value.stage, info.value.boundary) == ("total_x_checked", "input")


def test_warn_mode_lets_a_bad_batch_through(ray_cluster: Any) -> None:
    result = pipeline(rs.make_dataset, rs.total_x).run({"bad_row": 2}, executor="ray", contracts="warn")
    assert result.ok and result.artifacts["total"] == sum(range(1000)) - 2 - 7.5


def test_other_executors_stream_the_dataset_once_to_check_it(ray_cluster: Any) -> None:
    with pytest.raises(ContractError) as info:
        pipeline(rs.make_dataset, rs.total_x).run({"bad_row": 613}, executor="sequential")
    err = info.value
    assert (err.stage, err.artifact) == ("make_dataset", "ds")
    assert "batch 2 (rows 500 to 749) of the Ray Dataset" in str(err) and "-7.5" in str(err)
    assert err.result.stages["make_dataset"].status == "failed"  # eagerly: before anything consumed it
    ok = pipeline(rs.make_dataset, rs.total_x).run({"bad_row": -1}, executor="thread")
    assert ok.artifacts["total"] == sum(range(1000))
