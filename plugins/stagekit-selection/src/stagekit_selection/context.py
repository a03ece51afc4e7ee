"""``SelectionContext``: the universe, scored candidates, rejections and an audit log. Pandas-free.

A selection is refined by stages that each return a *new* context (it is frozen). Parallel refinements are
combined by :func:`stagekit_selection.merge.merge_selection`, registered through the merge hook.

Invariants, checked on construction: every candidate and every rejected symbol is in the universe; scores
are finite floats; every rejection has at least one reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import attrs

from stagekit import FrozenMap


@attrs.frozen
class AuditEntry:
    """One line of the audit log: which stage did what."""

    stage: str
    action: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.stage}: {self.action}" + (f" ({self.detail})" if self.detail else "")


def _universe(symbols: Iterable[str]) -> tuple[str, ...]:
    universe = tuple(symbols)
    if len(set(universe)) != len(universe):
        dupes = sorted({s for s in universe if universe.count(s) > 1})
        raise ValueError(f"universe lists {dupes} more than once")
    for s in universe:
        if not isinstance(s, str):
            raise TypeError(f"universe symbols must be strings, not {type(s).__name__} ({s!r})")
    return universe


def _scores(scores: Mapping[str, float]) -> FrozenMap[str, float]:
    out: dict[str, float] = {}
    for symbol, score in scores.items():
        value = float(score)
        if not math.isfinite(value):
            raise ValueError(f"candidate {symbol!r} has a non-finite score {score!r}")
        out[symbol] = value
    return FrozenMap(out)


def _reasons(rejections: Mapping[str, str | Iterable[str]]) -> FrozenMap[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for symbol, reasons in rejections.items():
        as_tuple = (reasons,) if isinstance(reasons, str) else tuple(reasons)
        if not as_tuple or not all(isinstance(r, str) and r for r in as_tuple):
            raise ValueError(f"rejection of {symbol!r} needs non-empty reason strings, got {reasons!r}")
        out[symbol] = as_tuple
    return FrozenMap(out)


def _audit(entries: Iterable[AuditEntry]) -> tuple[AuditEntry, ...]:
    audit = tuple(entries)
    for entry in audit:
        if not isinstance(entry, AuditEntry):
            raise TypeError(f"audit entries must be AuditEntry, not {type(entry).__name__} ({entry!r})")
    return audit


@attrs.frozen
class SelectionContext:
    """What a selection knows: the symbols considered, the candidates' scores, rejections and why, the log.

    ``candidates`` maps symbol -> score (higher is better); ``rejections`` maps symbol -> reasons (tuple of
    strings, in the order they were added). A rejected symbol may stay a candidate: rejection wins, and the
    score is kept for the audit.
    """

    universe: tuple[str, ...] = attrs.field(default=(), converter=_universe)
    candidates: FrozenMap[str, float] = attrs.field(factory=FrozenMap, converter=_scores)
    rejections: FrozenMap[str, tuple[str, ...]] = attrs.field(factory=FrozenMap, converter=_reasons)
    audit: tuple[AuditEntry, ...] = attrs.field(default=(), converter=_audit)

    def __attrs_post_init__(self) -> None:
        known = set(self.universe)
        for what, symbols in (("candidates", self.candidates), ("rejections", self.rejections)):
            outside = [s for s in symbols if s not in known]
            if outside:
                raise ValueError(f"{what} {sorted(outside)[:10]} are not in the universe")

    # --- reading ---------------------------------------------------------------------------------------

    @property
    def eligible(self) -> tuple[str, ...]:
        """Candidates that are not rejected, in candidate order."""
        return tuple(s for s in self.candidates if s not in self.rejections)

    def ranked(self) -> tuple[str, ...]:
        """Eligible symbols by score, best first; ties broken by symbol so the order is deterministic."""
        return tuple(sorted(self.eligible, key=lambda s: (-self.candidates[s], s)))

    def top(self, n: int) -> tuple[str, ...]:
        """The ``n`` best eligible symbols."""
        if n < 0:
            raise ValueError(f"top(n) needs n >= 0, got {n}")
        return self.ranked()[:n]

    # --- refining (each returns a new context) ---------------------------------------------------------

    def log(self, stage: str, action: str, detail: str = "") -> SelectionContext:
        """A copy with one more audit entry."""
        return attrs.evolve(self, audit=(*self.audit, AuditEntry(stage, action, detail)))

    def add_scores(self, deltas: Mapping[str, float], *, stage: str, detail: str = "") -> SelectionContext:
        """A copy where each symbol's score grew by its delta (a new candidate starts from 0)."""
        scores = dict(self.candidates)
        for symbol, delta in deltas.items():
            scores[symbol] = scores.get(symbol, 0.0) + float(delta)
        changed = attrs.evolve(self, candidates=scores)
        return changed.log(stage, "score", detail or f"scored {len(deltas)} symbols")

    def reject(self, reasons: Mapping[str, str], *, stage: str, detail: str = "") -> SelectionContext:
        """A copy where each symbol is rejected with one more reason (each reason given once)."""
        rejections = dict(self.rejections)
        for symbol, reason in reasons.items():
            previous = rejections.get(symbol, ())
            if reason not in previous:
                rejections[symbol] = (*previous, reason)
        changed = attrs.evolve(self, rejections=rejections)
        return changed.log(stage, "reject", detail or f"rejected {len(reasons)} symbols")
