"""merge_selection on hand-computed cases: base + two or three branches, and every conflict rule."""

from __future__ import annotations

import itertools
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stagekit_selection import AuditEntry, SelectionContext, merge_selection

from stagekit.errors import MergeConflictError

SEED = AuditEntry("seed_selection", "seed", "5 symbols")


@pytest.fixture
def base() -> SelectionContext:
    return SelectionContext(
        universe=("A", "B", "C", "D", "E"),
        candidates={"A": 1.0, "B": 0.0, "C": 0.0, "D": 0.0, "E": 0.0},
        rejections={"E": "seed: too new"},
        audit=(SEED,),
    )


def test_three_branches_merge_by_the_rules(base: SelectionContext) -> None:
    scorer = base.add_scores({"A": 0.5, "B": 1.0, "C": 0.25}, stage="scorer").reject(
        {"D": "scorer: no value"}, stage="scorer"
    )
    vol = base.reject({"B": "vol: too volatile", "D": "vol: no estimate"}, stage="vol")
    second = base.add_scores({"A": -0.25, "C": 0.75}, stage="second").reject(
        {"D": "scorer: no value"}, stage="second"
    )

    merged = merge_selection(base, [scorer, vol, second])

    # scores: base + the sum of every branch's delta; untouched ones keep the base score
    assert merged.candidates == {"A": 1.25, "B": 1.0, "C": 1.0, "D": 0.0, "E": 0.0}
    # rejections: base first, then new symbols in branch order; reasons in branch order, each once
    assert list(merged.rejections.items()) == [
        ("E", ("seed: too new",)),
        ("D", ("scorer: no value", "vol: no estimate")),
        ("B", ("vol: too volatile",)),
    ]
    # audit: base entries, then each branch's new entries in branch order
    assert [(e.stage, e.action) for e in merged.audit] == [
        ("seed_selection", "seed"),
        ("scorer", "score"), ("scorer", "reject"),
        ("vol", "reject"),
        ("second", "score"), ("second", "reject"),
    ]
    assert merged.universe == base.universe
    assert merged.eligible == ("A", "C")
    assert merged.ranked() == ("A", "C")  # 1.25 > 1.0


def test_score_changed_by_one_branch_takes_that_value(base: SelectionContext) -> None:
    one = base.add_scores({"B": 2.5}, stage="one")
    other = base.reject({"C": "other: no"}, stage="other")
    merged = merge_selection(base, [one, other])
    assert merged.candidates["B"] == 2.5
    assert merged.candidates["A"] == 1.0


def test_new_candidate_added_by_two_branches_sums_from_zero() -> None:
    base = SelectionContext(universe=("A", "B"), candidates={"A": 0.0})
    one = base.add_scores({"B": 0.5}, stage="one")
    two = base.add_scores({"B": 0.25}, stage="two")
    assert merge_selection(base, [one, two]).candidates == {"A": 0.0, "B": 0.75}


def test_branch_order_sets_reason_order_but_not_the_outcome(base: SelectionContext) -> None:
    one = base.reject({"A": "one: x"}, stage="one").add_scores({"B": 0.5}, stage="one")
    two = base.reject({"A": "two: y"}, stage="two").add_scores({"B": 0.25}, stage="two")
    forward = merge_selection(base, [one, two])
    backward = merge_selection(base, [two, one])
    assert forward.rejections["A"] == ("one: x", "two: y")
    assert backward.rejections["A"] == ("two: y", "one: x")
    assert forward.candidates == backward.candidates == {"A": 1.0, "B": 0.75, "C": 0.0, "D": 0.0, "E": 0.0}


def test_no_base_merges_from_empty() -> None:
    one = SelectionContext(universe=("A",), candidates={"A": 1.0})
    assert merge_selection(None, [one, one]).candidates == {"A": 2.0}


def test_universe_changed_differently_is_a_conflict(base: SelectionContext) -> None:
    one = SelectionContext(universe=("A", "B", "C", "D", "E", "F"), candidates=base.candidates,
                           rejections=base.rejections, audit=base.audit)
    two = SelectionContext(universe=("A", "B", "C", "D", "E", "G"), candidates=base.candidates,
                           rejections=base.rejections, audit=base.audit)
    with pytest.raises(MergeConflictError, match="changed the universe differently") as info:
        merge_selection(base, [one, two])
    assert info.value.path == ["universe"]
    assert merge_selection(base, [one, one]).universe == one.universe  # the same change agrees


def test_withdrawn_rejection_is_a_conflict(base: SelectionContext) -> None:
    unreject = SelectionContext(universe=base.universe, candidates=base.candidates, audit=base.audit)
    with pytest.raises(MergeConflictError, match="withdrew the rejection of") as info:
        merge_selection(base, [base.reject({"A": "x: y"}, stage="x"), unreject])
    assert info.value.path == ["rejections", "E"]


def test_rewritten_audit_is_a_conflict(base: SelectionContext) -> None:
    rewritten = SelectionContext(universe=base.universe, candidates=base.candidates,
                                 rejections=base.rejections, audit=(AuditEntry("liar", "seed"),))
    with pytest.raises(MergeConflictError, match="rewrote the audit log"):
        merge_selection(base, [base, rewritten])


def test_dropping_a_candidate_another_branch_scored_is_a_conflict(base: SelectionContext) -> None:
    dropped = SelectionContext(universe=base.universe, rejections=base.rejections, audit=base.audit,
                               candidates={k: v for k, v in base.candidates.items() if k != "B"})
    with pytest.raises(MergeConflictError, match="dropped candidate 'B'") as info:
        merge_selection(base, [dropped, base.add_scores({"B": 1.0}, stage="s")])
    assert info.value.path == ["candidates", "B"]
    # dropped by one branch and left alone by the other: dropped
    assert "B" not in merge_selection(base, [dropped, base]).candidates


def test_merged_value_must_be_consistent(base: SelectionContext) -> None:
    narrowed = SelectionContext(
        universe=("A", "B", "C", "E"), rejections=base.rejections, audit=base.audit,
        candidates={k: v for k, v in base.candidates.items() if k != "D"},
    )
    rejects_d = base.reject({"D": "x: no"}, stage="x")
    with pytest.raises(MergeConflictError, match=r"inconsistent: rejections \['D'\] are not in the universe"):
        merge_selection(base, [narrowed, rejects_d])


def test_non_selection_branch_is_reported(base: SelectionContext) -> None:
    with pytest.raises(MergeConflictError, match="branch 1 produced a dict"):
        merge_selection(base, [base, {}])  # type: ignore[list-item]


def test_context_is_immutable_and_pickles(base: SelectionContext) -> None:
    with pytest.raises(TypeError):
        base.candidates["A"] = 3.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        base.universe = ()  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(base)) == base
    assert hash(pickle.loads(pickle.dumps(base))) == hash(base)


def test_context_invariants() -> None:
    with pytest.raises(ValueError, match=r"candidates \['Z'\] are not in the universe"):
        SelectionContext(universe=("A",), candidates={"Z": 1.0})
    with pytest.raises(ValueError, match="non-finite score"):
        SelectionContext(universe=("A",), candidates={"A": float("nan")})
    with pytest.raises(ValueError, match="more than once"):
        SelectionContext(universe=("A", "A"))
    with pytest.raises(ValueError, match="non-empty reason"):
        SelectionContext(universe=("A",), rejections={"A": ()})


SYMBOLS = ("A", "B", "C", "D")
deltas = st.dictionaries(st.sampled_from(SYMBOLS), st.integers(-4, 4).map(lambda i: i / 4), max_size=4)
rejects = st.dictionaries(st.sampled_from(SYMBOLS), st.sampled_from(["r1", "r2"]), max_size=4)


@given(st.lists(st.tuples(deltas, rejects), min_size=1, max_size=4))
def test_merge_of_refinements_is_sum_and_union_in_any_order(
    changes: list[tuple[dict[str, float], dict[str, str]]],
) -> None:
    base = SelectionContext(universe=SYMBOLS, candidates={"A": 1.0, "B": -0.5}, rejections={"D": "r0"})
    branches = [
        base.add_scores(d, stage=f"b{i}").reject({s: f"b{i}:{r}" for s, r in rj.items()}, stage=f"b{i}")
        for i, (d, rj) in enumerate(changes)
    ]
    merged = merge_selection(base, branches)
    for symbol in SYMBOLS:
        touched = [d[symbol] for d, _ in changes if symbol in d and d[symbol] != 0]
        if touched or symbol in base.candidates:
            expected = base.candidates.get(symbol, 0.0) + sum(touched)
            assert merged.candidates[symbol] == pytest.approx(expected)
    assert set(merged.rejections) == {"D"}.union(*(rj for _, rj in changes))
    for order in itertools.permutations(branches):
        again = merge_selection(base, list(order))
        assert again.candidates == pytest.approx(dict(merged.candidates))
        assert {s: set(r) for s, r in again.rejections.items()} == {
            s: set(r) for s, r in merged.rejections.items()
        }
