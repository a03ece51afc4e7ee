"""Incremental runs under the ray executor (issue 14): a pipeline run again in its workspace is reused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import ray_stages as rs
import stagekit_ray.plugin

from stagekit import Host, Pipeline, Workspace
from stagekit.store.rundb import RunDatabase

pytestmark = pytest.mark.ray


def test_a_pipeline_run_again_under_ray_in_its_workspace_is_fully_cached(ray_cluster: Any, tmp_path: Path) -> None:
    host = Host(plugins=[stagekit_ray.plugin], autoload=False, env={})
    pipeline = Pipeline([rs.make_prices, rs.base_stats], host=host)
    first = pipeline.run({"n": 6}, executor="ray", workspace=tmp_path)
    assert {n: r.status for n, r in first.stages.items()} == {"make_prices": "ok", "base_stats": "ok"}
    assert set(first.stages["make_prices"].stored) == {"prices"}  # stored: by the worker or by the driver
    again = pipeline.run({"n": 6}, executor="ray", workspace=tmp_path)
    assert {n: r.status for n, r in again.stages.items()} == {"make_prices": "cached", "base_stats": "cached"}
    assert {r.reason for r in again.stages.values()} == {f"cached from run {first.run_id}"}
    assert again.artifacts["stats"] == first.artifacts["stats"] == {"rows": 6}
    pd.testing.assert_frame_equal(again.artifacts["prices"], first.artifacts["prices"])
    pd.testing.assert_frame_equal(Workspace(tmp_path).load("prices", host=host), first.artifacts["prices"])
    assert [r.status for r in RunDatabase.in_workspace(tmp_path).runs()] == ["ok", "ok"]
