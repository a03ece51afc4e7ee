"""A run pinned to a snapshot reads only the snapshot: the live files changing under it between stages
(rewritten in place, truncated, deleted) changes nothing of what it produces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from stagekit import Host, Workspace, hookimpl, load_pipeline, stage


def read_prices(prices: str) -> float:
    return float(pd.read_parquet(prices)["close"].sum())


def read_notes(notes: str, codes: str) -> str:
    return Path(notes).read_text() + "|" + Path(codes).read_text()


def combine(total: float, text: str, prices: str) -> dict[str, Any]:
    return {"total": total, "text": text, "again": float(pd.read_parquet(prices)["close"].sum())}


STAGES = [stage(read_prices, requires=["prices"], provides=["total"]),
          stage(read_notes, requires=["notes", "codes"], provides=["text"], after=["read_prices"]),
          stage(combine, requires=["total", "text", "prices"], provides=["summary"])]


class Plugin:
    @hookimpl
    def stagekit_register_stages(self, register: Any) -> None:
        for s in STAGES:
            register(s)


class Vandal:
    """Rewrites, truncates and deletes the live inputs once the first stage has finished."""

    def __init__(self, data: Path) -> None:
        self.data = data

    @hookimpl
    def stagekit_after_stage(self, run: Any, stage: Any, record: Any) -> None:
        if stage.name == "read_prices":
            pd.DataFrame({"close": [1000.0]}).to_parquet(self.data / "prices.parquet")  # in place
            (self.data / "notes.txt").write_text("")  # truncated
            (self.data / "codes.txt").unlink()  # deleted


def project(root: Path) -> Path:
    data = root / "data"
    data.mkdir(parents=True)
    pd.DataFrame({"close": [1.0, 2.0, 3.0]}).to_parquet(data / "prices.parquet")
    (data / "notes.txt").write_text("notes")
    (data / "codes.txt").write_text("codes")
    (root / "pipeline.toml").write_text(
        '[pipeline]\ntargets = ["combine"]\n\n[artifacts]\nprices = "data/prices.parquet"\n'
        'notes = "data/notes.txt"\ncodes = "data/codes.txt"\n')
    return data


def test_a_pinned_run_reads_only_its_snapshot_while_the_live_files_change(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    data = project(root)
    untouched = load_pipeline(root / "pipeline.toml", host=Host.isolated(Plugin())).run()
    Workspace(root).create_snapshot("golden", [data])
    pinned = load_pipeline(root / "pipeline.toml", host=Host.isolated(Plugin(), Vandal(data)), snapshot="golden",
                           workspace=root)
    assert all(str(root / ".stagekit") in str(pinned.artifacts[a]) for a in ("prices", "notes", "codes"))
    result = pinned.run()
    assert not (data / "codes.txt").exists() and (data / "notes.txt").read_text() == ""  # the vandal did act
    assert result.artifacts["summary"] == untouched.artifacts["summary"] == {
        "total": 6.0, "text": "notes|codes", "again": 6.0}
    assert result.snapshot == "golden"


def test_paths_outside_the_snapshot_stay_live(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    data = project(root)
    Workspace(root).create_snapshot("notes-only", [data / "notes.txt"])
    pinned = load_pipeline(root / "pipeline.toml", host=Host.isolated(Plugin()), snapshot="notes-only",
                           workspace=root)
    assert pinned.artifacts["prices"] == str((data / "prices.parquet").resolve())
    assert pinned.artifacts["notes"] != str((data / "notes.txt").resolve())
