"""One behaviour everywhere: a third-party plugin (its own merge and its own executor), installed with pip,
gives the same result through `stagekit run`, `stagekit.load_pipeline(...)` and `Pipeline(stages).run()`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from freshenv import FreshEnv

pytestmark = pytest.mark.xdist_group("install")

PIPELINE = """
[pipeline]
targets = ["basket_save"]
executor = "basket-serial"

[artifacts]
out = "out/cli.json"
"""

FROM_FILE = """
from stagekit import load_pipeline
result = load_pipeline("project/pipeline.toml", params={"basket_add_pears": {"count": 3}}).run()
assert result.ok and result.executor == "basket-serial", result.summary()
import shutil; shutil.copy("project/out/cli.json", "file.json")
"""

IN_CODE = """
from stagekit import Pipeline
from skt_basket.plugin import STAGES
result = Pipeline(STAGES).run({"out": "code.json"}, executor="basket-serial")
assert result.ok and result.executor == "basket-serial", result.summary()
"""


def test_the_cli_a_loaded_file_and_code_give_the_same_result(fresh: FreshEnv, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "out").mkdir(parents=True)
    (project / "pipeline.toml").write_text(PIPELINE)
    proc = fresh.stagekit("run", "project/pipeline.toml", plugins=["basket"], cwd=tmp_path)  # paths: the file's
    assert proc.returncode == 0, proc.stderr
    cli = json.loads((project / "out" / "cli.json").read_text())
    (project / "out" / "cli.json").unlink()
    for code in (FROM_FILE, IN_CODE):
        done = fresh.run_python(code, plugins=["basket"], cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    # both branches (apples +2, pears +3) changed the basket; Basket's own merge added them up, every way
    assert cli == {"apple": 3, "pear": 3}
    assert json.loads((tmp_path / "file.json").read_text()) == cli
    assert json.loads((tmp_path / "code.json").read_text()) == cli


def test_check_and_run_refuse_a_misspelt_param_alike_before_any_stage(fresh: FreshEnv, tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text(PIPELINE + '\n[params.basket_add_pears]\ncuont = 4\n')
    check = fresh.stagekit("check", "pipeline.toml", plugins=["basket"], cwd=tmp_path)
    run = fresh.stagekit("run", "pipeline.toml", plugins=["basket"], cwd=tmp_path)
    assert (check.returncode, run.returncode) == (1, 1)
    problem = "stage 'basket_add_pears' has no param 'cuont' (did you mean 'count'?)"
    assert problem in check.stderr and problem in run.stderr
    assert not (tmp_path / "out").exists() and "basket_fill" not in run.stdout  # nothing ran
