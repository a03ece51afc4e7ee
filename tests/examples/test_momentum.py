"""The demo pipeline, end to end through the CLI, on a reduced data size."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "momentum"
SMALL = ["--param", "generate_raw_prices.symbols=30", "--param", "generate_raw_prices.years=6"]


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    pytest.importorskip("stagekit_dataops")
    pytest.importorskip("stagekit_selection")
    pytest.importorskip("stagekit_backtest")
    shutil.copy(EXAMPLE / "pipeline.toml", tmp_path / "pipeline.toml")
    return tmp_path


def stagekit(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stagekit.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_the_demo_checks_and_runs_end_to_end(demo: Path) -> None:
    assert stagekit(demo, "check", "pipeline.toml").returncode == 0
    proc = stagekit(demo, "run", "pipeline.toml", *SMALL, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ok"] and all(s["status"] == "ok" for s in summary["stages"])
    names = {s["name"] for s in summary["stages"]}
    # selection branches ran as concurrent updaters of one artifact and were merged
    assert {"momentum_rank", "volatility_filter", "liquidity_filter", "correlation_cluster"} <= names
    assert {"metrics", "equity_curve", "portfolio", "ingestion_report"} <= set(summary["artifacts"])
    assert (demo / "report.html").stat().st_size > 1000
    assert (demo / "workspace" / "data" / "raw" / ".synthetic.json").exists()
