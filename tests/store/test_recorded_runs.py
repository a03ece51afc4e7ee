"""Runs of a pipeline file in a workspace are recorded in its run database, whichever way they start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stagekit import Host, StageError, hookimpl, load_pipeline, stage
from stagekit.cli import main
from stagekit.store.rundb import RunDatabase


def double(n: int) -> int:
    return n * 2


def explode(doubled: int) -> int:
    raise ValueError("no")


class Plugin:
    @hookimpl
    def stagekit_register_stages(self, register: Any) -> None:
        register(stage(double, requires=["n"], provides=["doubled"]))
        register(stage(explode, requires=["doubled"], provides=["boom"]))


def project(root: Path, target: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeline.toml").write_text(f'[pipeline]\nname = "demo"\ntargets = ["{target}"]\n\n[artifacts]\nn = 4\n')
    return root / "pipeline.toml"


def test_a_run_in_a_workspace_is_recorded_stage_by_stage(ws: Any) -> None:
    loaded = load_pipeline(project(ws.root, "double"), host=Host.isolated(Plugin()), workspace=ws.root)
    result = loaded.run()
    db = RunDatabase.in_workspace(ws.root)
    run = db.run("latest")
    assert (run.run_id, run.pipeline, run.status) == (result.run_id, "demo", "ok")
    assert [(s.stage, s.status) for s in db.stage_runs(run.run_id)] == [("double", "ok")]


def test_a_failed_run_is_recorded_with_what_finished(ws: Any) -> None:
    loaded = load_pipeline(project(ws.root, "explode"), host=Host.isolated(Plugin()), workspace=ws.root)
    with pytest.raises(StageError):
        loaded.run()
    db = RunDatabase.in_workspace(ws.root)
    run = db.run("latest")
    assert run.status == "failed"
    assert [(s.stage, s.status) for s in db.stage_runs(run.run_id)] == [("double", "ok"), ("explode", "failed")]


def test_outside_any_workspace_nothing_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STAGEKIT_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    load_pipeline(project(tmp_path / "p", "double"), host=Host.isolated(Plugin())).run()
    assert not list(tmp_path.rglob("runs.sqlite"))


def test_stagekit_run_records_in_the_workspace(ws: Any, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = project(ws.root, "double")
    monkeypatch.chdir(ws.root)
    monkeypatch.setattr(Host, "installed", classmethod(lambda cls: Host.isolated(Plugin())))
    monkeypatch.setattr("stagekit.cli.commands.make_host", lambda args, **extra: Host.isolated(Plugin()))
    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    assert RunDatabase.in_workspace(ws.root).run("latest").status == "ok"


def test_runs_list_and_show_read_the_database(ws: Any, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    loaded = load_pipeline(project(ws.root, "explode"), host=Host.isolated(Plugin()), workspace=ws.root)
    with pytest.raises(StageError):
        loaded.run()
    monkeypatch.chdir(ws.root)
    assert main(["runs", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:3] == ["RUN", "PIPELINE", "STATUS"] and listing[2].split()[1:3] == ["demo", "failed"]
    assert main(["runs", "show", "latest", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(s["stage"], s["status"]) for s in shown["stage_runs"]] == [("double", "ok"), ("explode", "failed")]
    assert "ValueError: no" in shown["stage_runs"][1]["error"]
    assert main(["runs", "show", "nope"]) != 0
    assert "nope" in capsys.readouterr().err
