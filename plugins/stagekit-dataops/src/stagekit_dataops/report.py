"""The ingestion report, and the ``IngestionValidator`` that builds it and checks that the levels add up.

The report has one row per raw file and level (L0..L4): rows in, rows out, rows rejected (and why), rows
added (calendar gaps). It is assembled from the log each level attached to its frame, then cross-checked
against the frames themselves, so a stage that dropped rows without saying so, or artifacts that do not
belong together, fail with an :class:`IngestionError` listing every discrepancy.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pandas as pd

from stagekit_dataops import log
from stagekit_dataops.errors import IngestionError

REPORT_COLUMNS = ("file", "level", "rows_in", "rows_out", "rows_rejected", "rows_added", "why")
NO_LOG = "no ingestion log on this artifact: rows counted from it"


class IngestionValidator:
    """Build the ingestion report from L0-L4 and check them against each other.

    ``max_rejected_fraction`` (0..1, default 1: never) fails ingestion when more than that fraction of the
    raw rows were rejected, naming the files that lost the most.
    """

    def __init__(self, max_rejected_fraction: float = 1.0) -> None:
        self.max_rejected_fraction = max_rejected_fraction

    def __call__(
        self,
        raw_prices: pd.DataFrame,
        prices: pd.DataFrame,
        aligned_prices: pd.DataFrame,
        features: pd.DataFrame,
        returns: pd.DataFrame,
        volume: pd.DataFrame,
        max_rejected_fraction: float | None = None,
    ) -> pd.DataFrame:
        limit = self.max_rejected_fraction if max_rejected_fraction is None else max_rejected_fraction
        if not 0 <= limit <= 1:
            raise ValueError(f"max_rejected_fraction must be between 0 and 1, not {limit!r}")
        frames = {"L0": raw_prices, "L1": prices, "L2": aligned_prices, "L3": features, "L4": returns}
        levels = {level: _entries(level, frame) for level, frame in frames.items()}
        problems = _conservation(levels) + _chain(levels) + _against_frames(levels, frames)
        problems += matrix_problems(features, returns, volume)
        problems += _rejected_too_many(levels, limit)
        if problems:
            raise IngestionError(
                f"ingestion does not add up ({len(problems)} problem{'s' * (len(problems) != 1)}):\n  "
                + "\n  ".join(problems), problems,
            )
        return report_frame(levels)


validate_ingestion = IngestionValidator()


def _entries(level: str, frame: pd.DataFrame) -> list[log.Entry]:
    found = log.read(frame, level)
    if found is not None:
        return found
    counts = _file_counts(level, frame)
    return log.entries(level, counts, counts, {f: Counter({NO_LOG: 0}) for f in counts})


def _file_counts(level: str, frame: pd.DataFrame) -> dict[str, int]:
    if level == "L4":
        return {}  # a matrix has no file column; its counts come from L3 (see matrix_problems)
    return log.file_counts(frame["file"])


def _conservation(levels: Mapping[str, list[log.Entry]]) -> list[str]:
    return [
        f"{e['level']} {e['file']}: {e['rows_out']} rows out, but {e['rows_in']} in - {e['rows_rejected']} "
        f"rejected + {e['rows_added']} added = {e['rows_in'] - e['rows_rejected'] + e['rows_added']}"
        for entries in levels.values() for e in entries
        if e["rows_out"] != e["rows_in"] - e["rows_rejected"] + e["rows_added"]
    ]


def _chain(levels: Mapping[str, list[log.Entry]]) -> list[str]:
    """What a level took in is what the level before it put out, file by file."""
    problems = []
    names = list(log.LEVELS)
    for before, after in itertools.pairwise(names):
        if not levels[after]:
            continue
        out = {e["file"]: e["rows_out"] for e in levels[before] if e["rows_out"]}
        took = {e["file"]: e["rows_in"] for e in levels[after]}
        for file in sorted(set(out) | set(took)):
            if out.get(file, 0) != took.get(file, 0):
                problems.append(f"{file}: {before} put out {out.get(file, 0)} rows but {after} took in "
                                f"{took.get(file, 0)}")
    return problems


def _against_frames(levels: Mapping[str, list[log.Entry]], frames: Mapping[str, pd.DataFrame]) -> list[str]:
    """Each level's log agrees with the rows its frame actually holds."""
    problems = []
    for level in ("L0", "L1", "L2", "L3"):
        actual = _file_counts(level, frames[level])
        logged = {e["file"]: e["rows_out"] for e in levels[level] if e["rows_out"]}
        for file in sorted(set(actual) | set(logged)):
            if actual.get(file, 0) != logged.get(file, 0):
                problems.append(f"{level} {file}: the log says {logged.get(file, 0)} rows, the artifact "
                                f"holds {actual.get(file, 0)}")
    return problems


def matrix_problems(features: pd.DataFrame, returns: pd.DataFrame, volume: pd.DataFrame) -> list[str]:
    """The L4 matrices hold exactly the L3 rows: same dates, same symbols, the same values present."""
    problems = []
    dates = pd.DatetimeIndex(sorted(features["date"].unique()))
    symbols = sorted(str(s) for s in features["symbol"].unique())
    for name, matrix, column in (("returns", returns, "ret"), ("volume", volume, "volume")):
        if not matrix.index.equals(dates):
            problems.append(f"L4 {name}: its {len(matrix.index)} dates are not the {len(dates)} dates of L3")
        if [str(c) for c in matrix.columns] != symbols:
            problems.append(f"L4 {name}: its {matrix.shape[1]} symbol columns are not the {len(symbols)} "
                            "symbols of L3")
        present, expected = int(matrix.notna().to_numpy().sum()), int(features[column].notna().sum())
        if present != expected:
            problems.append(f"L4 {name}: {present} values present, but L3 has {expected} {column!r} values")
    return problems


def _rejected_too_many(levels: Mapping[str, list[log.Entry]], limit: float) -> list[str]:
    total = sum(e["rows_in"] for e in levels["L0"])
    by_file: dict[str, int] = {}
    for entries in levels.values():
        for e in entries:
            by_file[e["file"]] = by_file.get(e["file"], 0) + e["rows_rejected"]
    rejected = sum(by_file.values())
    if total == 0 or rejected / total <= limit:
        return []
    worst = sorted(by_file.items(), key=lambda kv: -kv[1])[:5]
    return [f"{rejected} of {total} raw rows rejected ({rejected / total:.1%}), more than the "
            f"{limit:.1%} allowed; most from: " + ", ".join(f"{f} ({n})" for f, n in worst if n)]


def report_frame(levels: Mapping[str, list[log.Entry]]) -> pd.DataFrame:
    """One row per file and level, sorted by file then level."""
    rows: list[dict[str, Any]] = []
    for entries in levels.values():
        for e in entries:
            rows.append({"file": e["file"], "level": e["level"], "rows_in": e["rows_in"],
                         "rows_out": e["rows_out"], "rows_rejected": e["rows_rejected"],
                         "rows_added": e["rows_added"], "why": _why(e["why"])})
    report = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    report = report.astype({c: "int64" for c in REPORT_COLUMNS[2:6]}).astype({"file": "str", "level": "str",
                                                                               "why": "str"})
    return report.sort_values(["file", "level"], kind="stable").reset_index(drop=True)


def _why(why: Mapping[str, int]) -> str:
    ordered = sorted(why.items(), key=lambda kv: (-kv[1], kv[0]))
    return "; ".join(f"{reason} ({n} row{'s' * (n != 1)})" if n else reason for reason, n in ordered)
