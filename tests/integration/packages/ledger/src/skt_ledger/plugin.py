"""A bookkeeping plugin: its summary provides 'metrics', as the meteo plugin's does (they never met)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stagekit import hookimpl, stage


def entries() -> list[int]:
    return [100, -40, 25]


def summarize(entries: list[int]) -> dict[str, int]:
    return {"balance": sum(entries), "count": len(entries)}


def ledger_report(metrics: dict[str, int], out: str) -> None:
    Path(out).write_text(json.dumps(metrics, sort_keys=True))


@hookimpl
def stagekit_register_stages(register: Any) -> None:
    register(stage(entries, name="ledger_entries", provides=["entries"]))
    register(stage(summarize, name="ledger_summarize", requires=["entries"], provides=["metrics"]))
    register(stage(ledger_report, name="ledger_report", requires=["metrics", "out"]))
