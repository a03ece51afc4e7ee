"""Plugins that never heard of each other coexist: installing one never changes what another's pipeline
selects or how it runs, though both provide an artifact of the same name ('metrics')."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from freshenv import FreshEnv

pytestmark = pytest.mark.xdist_group("install")

PIPELINES = {
    "meteo": ('[pipeline]\ntargets = ["meteo_report"]\n\n[artifacts]\nout = "meteo.json"\n',
              {"low": 9.0, "peak": 15.5}),
    "ledger": ('[pipeline]\ntargets = ["ledger_report"]\n\n[artifacts]\nout = "ledger.json"\n',
               {"balance": 85, "count": 3}),
}


def run(fresh: FreshEnv, folder: Path, plugin: str, installed: list[str]) -> dict[str, float]:
    folder.mkdir(parents=True)
    text, _ = PIPELINES[plugin]
    (folder / "pipeline.toml").write_text(text)
    proc = fresh.stagekit("run", "pipeline.toml", plugins=installed, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, float] = json.loads((folder / f"{plugin}.json").read_text())
    return result


@pytest.mark.parametrize("plugin", sorted(PIPELINES))
def test_each_pipeline_gives_the_same_result_alone_and_beside_the_other(fresh: FreshEnv, tmp_path: Path,
                                                                      plugin: str) -> None:
    alone = run(fresh, tmp_path / "alone", plugin, [plugin])
    together = run(fresh, tmp_path / "together", plugin, ["meteo", "ledger", "basket"])
    assert alone == together == PIPELINES[plugin][1]


def test_a_pipeline_of_neither_plugin_names_both_creators(fresh: FreshEnv, tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text('[pipeline]\nstages = ["meteo_report", "ledger_report"]\n'
                                            '\n[artifacts]\nout = "x.json"\n')
    proc = fresh.stagekit("check", "pipeline.toml", plugins=["meteo", "ledger"], cwd=tmp_path)
    assert proc.returncode == 1
    assert "artifact 'metrics'" in proc.stderr
