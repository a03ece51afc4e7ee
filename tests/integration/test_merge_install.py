"""A third-party value type, from a plugin package installed with pip, merged at a join under every executor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from freshenv import FreshEnv

pytestmark = pytest.mark.xdist_group("install")

PIPELINE = """
[pipeline]
targets = ["basket_save"]

[artifacts]
out = "basket.json"
"""


@pytest.mark.parametrize("executor", ["sequential", "thread", "process"])
def test_a_plugin_value_type_is_merged_by_its_own_merge(fresh: FreshEnv, tmp_path: Path, executor: str) -> None:
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    proc = fresh.stagekit("run", "pipeline.toml", "--executor", executor, "--workers", "2", plugins=["basket"],
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # both branches (apples +2, pears +3) changed the basket concurrently; Basket's own merge added them up
    assert json.loads((tmp_path / "basket.json").read_text()) == {"apple": 3, "pear": 3}


def test_check_knows_the_plugin_type_has_a_merge(fresh: FreshEnv, tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(PIPELINE)
    proc = fresh.stagekit("check", "pipeline.toml", plugins=["basket"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
