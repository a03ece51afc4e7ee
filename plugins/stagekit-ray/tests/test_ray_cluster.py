"""Where the cluster address comes from, and what a local cluster leaves in the environment."""

from __future__ import annotations

import os
from typing import Any

import pytest
from stagekit_ray.cluster import find_address

pytestmark = pytest.mark.ray


def test_the_address_option_wins_then_stagekit_then_ray_variables() -> None:
    env = {"STAGEKIT_RAY_ADDRESS": "10.0.0.1:6379", "RAY_ADDRESS": "10.0.0.2:6379"}
    assert find_address("auto", env) == ("auto", "executor option 'address'")
    assert find_address(None, env) == ("10.0.0.1:6379", "environment variable STAGEKIT_RAY_ADDRESS")
    assert find_address(None, {"RAY_ADDRESS": "10.0.0.2:6379"}) == ("10.0.0.2:6379",
                                                                   "environment variable RAY_ADDRESS")
    assert find_address(None, {"RAY_ADDRESS": ""}) == (None, "")


def test_a_local_cluster_authenticates_with_a_token_kept_in_the_environment(ray_cluster: Any) -> None:
    assert os.environ["RAY_AUTH_MODE"] == "token"
    assert len(os.environ["RAY_AUTH_TOKEN"]) == 64
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    home = os.path.join(ray_cluster.temp_dir, "home")
    assert "ray_bootstrap_config.yaml" in os.listdir(home)  # where Ray's daemons see their home
