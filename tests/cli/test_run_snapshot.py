"""`stagekit run PIPELINE --snapshot NAME`: stages read the snapshot's files, the run's record names it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from stagekit.cli import main

MODULE = "skt_snapshot_fixture"
SOURCE = '''
from pathlib import Path
from stagekit import hookimpl, stage


@stage(requires=["snapshot"], provides=["text"])
def read_features(snapshot):
    return (Path(snapshot) / "features" / "a.csv").read_text()


@hookimpl
def stagekit_register_stages(register):
    register(read_features)
'''


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    info = site / f"{MODULE}-1.0.dist-info"
    info.mkdir(parents=True)
    (site / f"{MODULE}.py").write_text(SOURCE)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: skt-snapshot-fixture\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[stagekit]\nsnapfix = {MODULE}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("STAGEKIT_PLUGINS", "snapfix")
    monkeypatch.delenv("STAGEKIT_WORKSPACE", raising=False)
    ws = tmp_path / "ws"
    (ws / "features").mkdir(parents=True)
    (ws / "features" / "a.csv").write_text("x\n1\n")
    (ws / "pipeline.toml").write_text('[pipeline]\ntargets = ["read_features"]\n')
    monkeypatch.chdir(ws)
    yield ws
    sys.modules.pop(MODULE, None)


def test_a_run_pinned_to_a_snapshot_reads_the_snapshot_not_the_live_files(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["snapshot", "create", "golden", "features"]) == 0
    (workspace / "features" / "a.csv").write_text("x\n999\n")  # the source changes after the snapshot
    capsys.readouterr()
    assert main(["run", "pipeline.toml", "--snapshot", "golden", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["snapshot"] == "golden" and summary["ok"]
    record = json.loads((workspace / "runs" / f"{summary['run_id']}.json").read_text())
    assert record["snapshot"] == "golden" and record["pipeline"] == "pipeline.toml"
    text = main(["run", "pipeline.toml", "--snapshot", "golden"])
    assert text == 0


def test_the_stage_sees_the_snapshot_content(workspace: Path) -> None:
    from stagekit import Host, Pipeline
    from stagekit.workspace import Workspace

    ws = Workspace.locate(str(workspace))
    ws.create_snapshot("golden", [workspace / "features"])
    (workspace / "features" / "a.csv").write_text("changed\n")
    root = ws.checkout("golden")
    result = Pipeline.from_host(Host(), targets=["read_features"]).run({"snapshot": root})
    assert result.artifacts["text"] == "x\n1\n"


def test_an_unknown_snapshot_is_a_clear_error(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "pipeline.toml", "--snapshot", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err
