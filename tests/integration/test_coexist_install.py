"""Plugins that never heard of each other coexist: installing one never changes what another's pipeline
selects or how it runs, though both provide an artifact of the same name ('metrics')."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from freshenv import REPO, FreshEnv

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


BUNDLED = ("stagekit-dataops", "stagekit-selection", "stagekit-backtest")  # stagekit-backtest provides metrics too


@pytest.fixture(scope="module")
def bundled(fresh: FreshEnv, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The bundled plugins, each installed (--target, no deps: pandas comes from the env's farm)."""
    names = []
    for dist in BUNDLED:
        target = tmp_path_factory.mktemp(dist)
        fresh.install(REPO / "plugins" / dist, target=target, no_deps=True)
        fresh.targets[dist] = target
        names.append(dist)
    return names


@pytest.mark.parametrize("plugin", sorted(PIPELINES))
def test_each_pipeline_gives_the_same_result_alone_and_beside_the_others(fresh: FreshEnv, tmp_path: Path,
                                                                       plugin: str, bundled: list[str]) -> None:
    alone = run(fresh, tmp_path / "alone", plugin, [plugin])
    everything = ["meteo", "ledger", "basket", *bundled]
    loaded = {r["distribution"] for r in fresh.stagekit_json("plugins", plugins=everything) if r["status"] == "loaded"}
    assert set(BUNDLED) <= loaded and "stagekit-itest-meteo" in loaded and "stagekit-itest-ledger" in loaded
    together = run(fresh, tmp_path / "together", plugin, everything)
    assert alone == together == PIPELINES[plugin][1]


def test_a_pipeline_of_neither_plugin_names_both_creators(fresh: FreshEnv, tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text('[pipeline]\nstages = ["meteo_report", "ledger_report"]\n'
                                            '\n[artifacts]\nout = "x.json"\n')
    proc = fresh.stagekit("check", "pipeline.toml", plugins=["meteo", "ledger"], cwd=tmp_path)
    assert proc.returncode == 1
    assert "artifact 'metrics'" in proc.stderr
