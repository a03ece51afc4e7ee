"""A weather plugin: its evaluation provides 'metrics', as the ledger plugin's does (they never met)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stagekit import hookimpl, stage


def readings() -> list[float]:
    return [12.0, 15.5, 9.0]


def evaluate(readings: list[float]) -> dict[str, float]:
    return {"peak": max(readings), "low": min(readings)}


def forecast_report(metrics: dict[str, float], out: str) -> None:
    Path(out).write_text(json.dumps(metrics, sort_keys=True))


@hookimpl
def stagekit_register_stages(register: Any) -> None:
    register(stage(readings, name="meteo_readings", provides=["readings"]))
    register(stage(evaluate, name="meteo_evaluate", requires=["readings"], provides=["metrics"]))
    register(stage(forecast_report, name="meteo_report", requires=["metrics", "out"]))
