"""Helpers for the dataops tests: run the ingestion chain stage by stage, contracts checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from stagekit_dataops import stages
from stagekit_dataops.plugin import dataops_stages

from stagekit import ContractChecker
from stagekit.testing import isolated_host


def checker(mode: str = "strict") -> ContractChecker:
    """A checker with stagekit's built-in validators (pandera), as a run in an isolated host uses."""
    return ContractChecker(isolated_host().hook.stagekit_validate_artifact, mode)


def run_chain(raw_dir: Path, check: ContractChecker | None = None, **params: Any) -> dict[str, Any]:
    """Every dataops stage in order, called directly, each boundary checked against its contracts."""
    by_name = {s.name: s for s in dataops_stages()}
    artifacts: dict[str, Any] = {"raw_dir": raw_dir}
    check = check or checker()
    order = ("read_raw_prices", "clean_prices", "align_calendar", "compute_features", "build_returns_matrix",
             "validate_ingestion")
    for name in order:
        st = by_name[name]
        inputs = {a: artifacts[a] for a in st.requires}
        check.check(st, "input", inputs)
        kwargs = {**st.params, **params.get(name, {}), **inputs}
        outputs = st.outputs_from(getattr(stages, name)(**kwargs))
        check.check(st, "output", outputs)
        artifacts.update(outputs)
    return artifacts


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def report_row(report: pd.DataFrame, file: str, level: str) -> dict[str, Any]:
    rows = report[(report["file"] == file) & (report["level"] == level)]
    assert len(rows) == 1, f"no single report row for {file} {level}:\n{report}"
    return {str(k): v for k, v in rows.iloc[0].to_dict().items()}
