"""The built-in merges: mappings, sets, the merge method, dataclasses/attrs, DataFrames, Arrow Tables."""

from __future__ import annotations

import collections
import dataclasses
import math
import types
from typing import Any

import attrs
import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pluggy
import pyarrow as pa
import pytest
from hypothesis import given, settings

from stagekit import MergeTable, builtin_merge_table, hookspecs, merge_values, values_equal
from stagekit.errors import MergeConflictError
from stagekit.merge import builtin as merges_builtin
from stagekit.merge.builtin import MergeStrategyError


@pytest.fixture(scope="module")
def table() -> MergeTable:
    return builtin_merge_table()


def conflict(table: MergeTable, base: Any, branches: list[Any]) -> MergeConflictError:
    with pytest.raises(MergeConflictError) as info:
        table.merge(base, branches)
    return info.value


# --- the hook ----------------------------------------------------------------------------------------


def test_the_builtin_merges_register_through_the_hook() -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(merges_builtin, name="stagekit-builtin-merges")
    table = MergeTable()
    pm.hook.stagekit_register_merges(register=lambda t, m: table.add(t, m, "plugin 'builtin'"))
    labels = [r.type_label for r in table]
    assert labels == ["collections.abc.Mapping", "collections.abc.Set", "pandas.DataFrame",
                      "pyarrow.lib.Table", "builtins.object"]
    assert table.merge({"a": 1}, [{"a": 1, "b": 2}, {"a": 3}]) == {"a": 3, "b": 2}


# --- mappings ----------------------------------------------------------------------------------------


def test_mapping_three_way_by_hand(table: MergeTable) -> None:
    base = {"a": 1, "b": 2, "c": 3}
    left = {"a": 10, "b": 2, "c": 3, "d": 4}
    right = {"a": 1, "c": 3, "e": 5}  # deleted b
    merged = table.merge(base, [left, right])
    assert merged == {"a": 10, "c": 3, "d": 4, "e": 5}
    assert list(merged) == ["a", "c", "d", "e"]  # base order, then new keys in branch order


def test_mapping_recurses_into_a_key_changed_on_both_sides(table: MergeTable) -> None:
    base = {"cfg": {"x": 1, "y": 2}, "n": 0}
    left = {"cfg": {"x": 5, "y": 2}, "n": 0}
    right = {"cfg": {"x": 1, "y": 7, "z": 0}, "n": 0}
    assert table.merge(base, [left, right]) == {"cfg": {"x": 5, "y": 7, "z": 0}, "n": 0}


def test_a_nested_conflict_names_the_whole_path(table: MergeTable) -> None:
    base = {"cfg": {"x": {"deep": 1}}, 3: "three"}
    left, right = {"cfg": {"x": {"deep": 2}}, 3: "three"}, {"cfg": {"x": {"deep": 3}}, 3: "three"}
    err = conflict(table, base, [left, right])
    assert err.path == ["cfg", "x", "deep"]
    assert "'cfg'" in str(err) and "'deep'" in str(err) and "to different values: 2, 3" in err.reason
    err = conflict(table, base, [{**base, 3: "drei"}, {**base, 3: "trois"}])
    assert err.path == [3] and "'drei', 'trois'" in str(err)


def test_a_key_deleted_in_one_branch_and_unchanged_elsewhere_is_deleted(table: MergeTable) -> None:
    base = {"a": [1], "b": 2}
    assert table.merge(base, [{"b": 2}, dict(base)]) == {"b": 2}
    assert table.merge(base, [{"b": 2}, {"a": [1], "b": 3}]) == {"b": 3}  # re-set to an equal value
    assert table.merge(base, [{"b": 2}, {"b": 2}]) == {"b": 2}  # deleted by both


def test_a_key_deleted_in_one_branch_and_changed_in_another_conflicts(table: MergeTable) -> None:
    err = conflict(table, {"a": 1, "b": 2}, [{"b": 2}, {"a": 5, "b": 2}])
    assert err.path == ["a"]
    assert "deleted by one branch and changed by another (from 1 to 5)" in str(err)


def test_keys_added_by_several_branches_must_agree(table: MergeTable) -> None:
    assert table.merge({}, [{"k": [1, 2]}, {"k": [1, 2]}]) == {"k": [1, 2]}
    assert table.merge({}, [{"k": {"x": 1}}, {"k": {"y": 2}}]) == {"k": {"x": 1, "y": 2}}
    assert conflict(table, {}, [{"k": 1}, {"k": 2}]).path == ["k"]
    err = conflict(table, {}, [{"k": None}, {"k": 2}])
    assert "added as None by one branch and as 2 by another" in str(err)


def test_mapping_with_no_base_is_a_union(table: MergeTable) -> None:
    assert table.merge(None, [{"a": 1}, {"b": 2}]) == {"a": 1, "b": 2}


def test_mapping_subclasses_keep_their_type_and_state(table: MergeTable) -> None:
    base: collections.defaultdict[str, list[int]] = collections.defaultdict(list, {"a": [1]})
    left, right = collections.defaultdict(list, base), collections.defaultdict(list, base)
    left["b"] = [2]
    right["c"] = [3]
    merged = table.merge(base, [left, right])
    assert type(merged) is collections.defaultdict and merged.default_factory is list
    assert dict(merged) == {"a": [1], "b": [2], "c": [3]}
    proxy = types.MappingProxyType
    merged = table.merge(proxy({"a": 1}), [proxy({"a": 2}), proxy({"a": 1, "b": 1})])
    assert type(merged) is proxy and dict(merged) == {"a": 2, "b": 1}
    ordered = collections.OrderedDict
    merged = table.merge(ordered(a=1), [ordered(a=1, z=1), ordered(b=2, a=1)])
    assert type(merged) is ordered and list(merged) == ["a", "z", "b"]


# --- sets and lists ----------------------------------------------------------------------------------


def test_set_three_way_keeps_every_addition_and_removal(table: MergeTable) -> None:
    assert table.merge({1, 2, 3}, [{1, 2, 4}, {2, 3, 5}]) == {2, 4, 5}
    merged = table.merge(frozenset("ab"), [frozenset("abc"), frozenset("b")])
    assert merged == frozenset("bc") and type(merged) is frozenset
    assert table.merge(None, [{1}, {2}]) == {1, 2}


def test_lists_conflict_unless_equal(table: MergeTable) -> None:
    assert table.merge([1], [[1, 2], [1, 2]]) == [1, 2]
    err = conflict(table, [1], [[1, 2], [1, 3]])
    assert "list has no merge" in str(err) and "[1, 2], [1, 3]" in str(err)


def test_plain_objects_without_a_merge_conflict_naming_their_type(table: MergeTable) -> None:
    class Opaque:
        def __init__(self, v: int) -> None:
            self.v = v

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Opaque) and other.v == self.v

        __hash__ = None  # type: ignore[assignment]

    base = Opaque(1)
    assert table.merge(base, [Opaque(1), Opaque(2)]).v == 2  # an equal "change" is no change
    err = conflict(table, base, [Opaque(2), Opaque(3)])
    assert "Opaque has no merge" in str(err) and "__stagekit_merge__" in str(err)


# --- the merge method --------------------------------------------------------------------------------


class Basket:
    calls: list[tuple[Any, list[Any]]] = []

    def __init__(self, *items: str) -> None:
        self.items = list(items)

    @classmethod
    def __stagekit_merge__(cls, base: Basket | None, branches: list[Basket]) -> Basket:
        cls.calls.append((base, branches))
        return Basket(*sorted({i for b in branches for i in b.items}))


class Ledger(dict):  # type: ignore[type-arg]
    @classmethod
    def __stagekit_merge__(cls, base: Any, branches: list[Any]) -> Ledger:
        total = collections.Counter(base or {})
        for branch in branches:
            total.update({k: v - (base or {}).get(k, 0) for k, v in branch.items()})
        return Ledger(total)


def test_the_merge_method_is_called_with_base_and_the_changed_branches(table: MergeTable) -> None:
    base = Basket("apple")
    left, right = Basket("apple", "pear"), Basket("fig")
    merged = table.merge(base, [left, base, right])
    assert merged.items == ["apple", "fig", "pear"]
    assert Basket.calls[-1] == (base, [left, right])


def test_the_merge_method_beats_the_builtin_structural_merges(table: MergeTable) -> None:
    merged = table.merge(Ledger(a=1), [Ledger(a=3), Ledger(a=2, b=1)])
    assert merged == {"a": 4, "b": 1} and type(merged) is Ledger  # the mapping merge would conflict on "a"


def test_a_registered_merge_beats_the_merge_method() -> None:
    table = builtin_merge_table()
    table.add(Ledger, lambda base, branches: "registered", "plugin 'ledgers'")
    assert table.merge(Ledger(a=1), [Ledger(a=3), Ledger(a=2)]) == "registered"


# --- dataclasses and attrs ---------------------------------------------------------------------------


def _notes(base: str | None, branches: list[str]) -> str:
    return " | ".join(sorted(branches))


@dataclasses.dataclass(frozen=True)
class Stats:
    name: str = "s"
    tags: list[str] = dataclasses.field(default_factory=list, metadata={"stagekit_merge": "union"})
    log: tuple[str, ...] = dataclasses.field(default=(), metadata={"stagekit_merge": "concat"})
    count: int = dataclasses.field(default=0, metadata={"stagekit_merge": "sum"})
    best: float = dataclasses.field(default=math.inf, metadata={"stagekit_merge": "min"})
    worst: float = dataclasses.field(default=-math.inf, metadata={"stagekit_merge": "max"})
    notes: str = dataclasses.field(default="", metadata={"stagekit_merge": _notes})
    config: dict[str, int] = dataclasses.field(default_factory=dict, metadata={"stagekit_merge": "merge"})


@attrs.frozen
class AttrStats:
    name: str = "s"
    tags: frozenset[str] = attrs.field(default=frozenset(), metadata={"stagekit_merge": "union"})
    log: list[str] = attrs.field(factory=list, metadata={"stagekit_merge": "concat"})
    count: int = attrs.field(default=0, metadata={"stagekit_merge": "sum"})
    best: float = attrs.field(default=math.inf, metadata={"stagekit_merge": "min"})
    worst: float = attrs.field(default=-math.inf, metadata={"stagekit_merge": "max"})
    notes: str = attrs.field(default="", metadata={"stagekit_merge": _notes})
    _secret: int = attrs.field(default=0, alias="secret")


def test_dataclass_field_strategies_by_hand(table: MergeTable) -> None:
    base = Stats(tags=["a"], log=("start",), count=10, best=5.0, worst=5.0, config={"x": 1, "y": 1})
    left = dataclasses.replace(base, tags=["a", "b"], log=("start", "A1", "A2"), count=13, best=4.0,
                               worst=6.0, notes="from A", config={"x": 2, "y": 1})
    right = dataclasses.replace(base, tags=["c", "a"], log=("start", "B1"), count=11, best=3.0, worst=5.5,
                                notes="from B", config={"x": 1, "y": 3})
    merged = table.merge(base, [left, right])
    assert merged == Stats(name="s", tags=["a", "b", "c"], log=("start", "A1", "A2", "B1"), count=14,
                           best=3.0, worst=6.0, notes="from A | from B", config={"x": 2, "y": 3})


def test_attrs_field_strategies_and_private_aliases(table: MergeTable) -> None:
    base = AttrStats(tags=frozenset("a"), log=["start"], count=1)
    left = attrs.evolve(base, tags=frozenset("ab"), log=["start", "L"], count=3, secret=7, best=2.0)
    right = attrs.evolve(base, tags=frozenset("c"), log=["start", "R"], count=4, worst=9.0, notes="r")
    merged = table.merge(base, [left, right])
    assert merged == AttrStats(tags=frozenset("abc"), log=["start", "L", "R"], count=6, best=2.0,
                               worst=9.0, notes="r", secret=7)


def test_replace_is_the_default_and_conflicts_on_different_values(table: MergeTable) -> None:
    base = Stats()
    assert table.merge(base, [Stats(name="x", count=1), Stats(name="x", count=2)]).name == "x"
    err = conflict(table, base, [Stats(name="x"), Stats(name="y")])
    assert err.path == ["name"] and "'x', 'y'" in str(err) and "'replace'" in str(err)


def test_concat_refuses_a_branch_that_rewrote_the_base(table: MergeTable) -> None:
    base = Stats(log=("a", "b"))
    err = conflict(table, base, [Stats(log=("a", "b", "c")), Stats(log=("b",))])
    assert err.path == ["log"] and "more than append" in str(err)


def test_strategies_without_a_base_treat_it_as_empty(table: MergeTable) -> None:
    merged = table.merge(None, [Stats(count=2, log=("x",)), Stats(count=3, log=("y",))])
    assert (merged.count, merged.log) == (5, ("x", "y"))


def test_an_unknown_strategy_names_the_class_and_field(table: MergeTable) -> None:
    @dataclasses.dataclass
    class Bad:
        x: int = dataclasses.field(default=0, metadata={"stagekit_merge": "average"})

    with pytest.raises(MergeStrategyError, match=r"Bad\.x: unknown merge strategy 'average'"):
        table.merge(Bad(), [Bad(1), Bad(2)])


def test_union_of_strings_is_refused(table: MergeTable) -> None:
    @dataclasses.dataclass
    class Text:
        s: str = dataclasses.field(default="", metadata={"stagekit_merge": "union"})

    with pytest.raises(MergeStrategyError, match="needs sets, lists or tuples, got str"):
        table.merge(Text(), [Text("ab"), Text("cd")])


def test_fields_outside_init_are_recomputed(table: MergeTable) -> None:
    @dataclasses.dataclass(frozen=True)
    class Cart:
        items: tuple[int, ...] = dataclasses.field(default=(), metadata={"stagekit_merge": "concat"})
        total: int = dataclasses.field(init=False, default=0)

        def __post_init__(self) -> None:
            object.__setattr__(self, "total", sum(self.items))

    merged = table.merge(Cart((1,)), [Cart((1, 2)), Cart((1, 30))])
    assert merged.items == (1, 2, 30) and merged.total == 33


def test_a_merge_strategy_of_merge_values_recurses(table: MergeTable) -> None:
    @dataclasses.dataclass(frozen=True)
    class Inner:
        a: int = 0
        b: int = 0

    @dataclasses.dataclass(frozen=True)
    class Outer:
        inner: Inner = dataclasses.field(default=Inner(), metadata={"stagekit_merge": merge_values})

    merged = table.merge(Outer(), [Outer(Inner(a=1)), Outer(Inner(b=2))])
    assert merged == Outer(Inner(a=1, b=2))
    err = conflict(table, Outer(), [Outer(Inner(a=1)), Outer(Inner(a=2))])
    assert err.path == ["inner", "a"]


# --- DataFrames --------------------------------------------------------------------------------------


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "f": np.arange(6, dtype=float),
            "i": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
            "s": pd.Series(list("abcdef"), dtype="str"),
            "c": pd.Categorical(list("xyxyxy")),
            "t": pd.date_range("2024-01-01", periods=6, tz="UTC"),
        },
        index=pd.Index([10, 11, 12, 13, 14, 15], name="id"),
    )


def test_dataframe_added_columns_are_joined_in_order(table: MergeTable, frame: pd.DataFrame) -> None:
    left = frame.assign(a1=1.0, a2=2.0)
    right = frame.copy(deep=False)
    right["b1"] = np.arange(6)
    merged = table.merge(frame, [left, right])
    assert list(merged.columns) == ["f", "i", "s", "c", "t", "a1", "a2", "b1"]
    assert merged.index.equals(frame.index) and merged.index.name == "id"
    assert (merged.dtypes == pd.concat([left.dtypes, right.dtypes[["b1"]]])).all()
    pd.testing.assert_frame_equal(merged[list(frame.columns)], frame)
    assert (merged["b1"] == np.arange(6)).all() and (merged["a2"] == 2.0).all()
    # no copies: the result holds the branches' own columns
    assert np.shares_memory(merged["b1"].to_numpy(), right["b1"].to_numpy())
    assert np.shares_memory(merged["f"].to_numpy(), frame["f"].to_numpy())
    # ...and copy-on-write still protects them: writing into the result leaves base and branches alone
    merged.loc[10, "f"] = -1.0
    merged.loc[10, "b1"] = -1
    assert frame.loc[10, "f"] == 0.0 and left.loc[10, "f"] == 0.0 and right.loc[10, "b1"] == 0


def test_unchanged_columns_are_never_compared_by_value(
    table: MergeTable, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> bool:
        raise AssertionError("compared a column that no branch changed")

    left, right = frame.assign(x=1), frame.assign(y=2)
    monkeypatch.setattr(pd.Series, "equals", refuse)
    monkeypatch.setattr(pd.DataFrame, "equals", lambda self, other: False)
    merged = table.merge(frame, [left, right])
    assert list(merged.columns) == [*frame.columns, "x", "y"]


def test_a_column_changed_by_one_branch_takes_its_values(table: MergeTable, frame: pd.DataFrame) -> None:
    left = frame.assign(f=frame["f"] * 2)
    right = frame.assign(new=0)
    merged = table.merge(frame, [left, right])
    assert list(merged["f"]) == [0, 2, 4, 6, 8, 10] and list(merged.columns) == [*frame.columns, "new"]


def test_a_column_changed_by_two_branches_must_agree(table: MergeTable, frame: pd.DataFrame) -> None:
    twice = frame["f"] * 2
    merged = table.merge(frame, [frame.assign(f=twice, x=1), frame.assign(f=twice.copy(), y=1)])
    assert list(merged["f"]) == list(twice) and list(merged.columns)[-2:] == ["x", "y"]
    with_nan = frame.assign(f=[math.nan] * 6)
    assert merged is not None and table.merge(frame, [with_nan, frame.assign(f=[math.nan] * 6)]) is with_nan
    changed = frame["f"].copy()
    changed.iloc[3] = -1.0
    err = conflict(table, frame, [frame.assign(f=twice, x=1), frame.assign(f=changed, y=1)])
    assert err.path == ["f"]
    assert "6 of 6 rows differ" not in str(err) and "the first at index 11: 2.0 vs 1.0" in str(err)


def test_a_column_dtype_change_is_a_change(table: MergeTable, frame: pd.DataFrame) -> None:
    err = conflict(table, frame, [frame.assign(i=frame["i"].astype("float64"), x=1),
                                  frame.assign(i=frame["i"].astype("Int32"), y=1)])
    assert err.path == ["i"] and "dtype float64 vs Int32" in str(err)


def test_a_column_dropped_by_one_branch_is_dropped(table: MergeTable, frame: pd.DataFrame) -> None:
    merged = table.merge(frame, [frame.drop(columns=["s"]), frame.assign(z=0)])
    assert list(merged.columns) == ["f", "i", "c", "t", "z"]
    err = conflict(table, frame, [frame.drop(columns=["s"]), frame.assign(s="changed")])
    assert err.path == ["s"] and "dropped by one branch and changed by another" in str(err)


def test_new_columns_of_the_same_name_must_agree(table: MergeTable, frame: pd.DataFrame) -> None:
    merged = table.merge(frame, [frame.assign(n=np.ones(6)), frame.assign(n=np.ones(6), m=1)])
    assert list(merged.columns) == [*frame.columns, "n", "m"]
    err = conflict(table, frame, [frame.assign(n=1), frame.assign(n=2)])
    assert err.path == ["n"] and "added by several branches" in str(err)


def test_misaligned_indexes_are_an_error_that_says_so(table: MergeTable, frame: pd.DataFrame) -> None:
    err = conflict(table, frame, [frame.assign(x=1), frame.iloc[:4].assign(y=1)])
    assert "row indexes differ (6 rows vs 4 rows)" in str(err)
    err = conflict(table, frame, [frame.assign(x=1), frame.iloc[::-1].assign(y=1)])
    assert "the same labels in a different order" in str(err)
    other = frame.set_axis(pd.Index([10, 11, 12, 13, 14, 99], name="id")).assign(y=1)
    assert "[15] vs [99]" in str(conflict(table, frame, [frame.assign(x=1), other]))


def test_branches_that_filtered_the_same_rows_still_merge(table: MergeTable, frame: pd.DataFrame) -> None:
    kept = frame.iloc[1:4]
    merged = table.merge(frame, [kept.assign(x=1), kept.assign(y=2)])
    assert list(merged.index) == [11, 12, 13] and list(merged.columns) == [*frame.columns, "x", "y"]


def test_dataframe_with_no_base_unions_the_columns(table: MergeTable, frame: pd.DataFrame) -> None:
    merged = table.merge(None, [frame[["f", "i"]], frame[["i", "s"]]])
    assert list(merged.columns) == ["f", "i", "s"]


def test_duplicate_column_labels_cannot_be_merged(table: MergeTable) -> None:
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    err = conflict(table, None, [dup, dup.assign(b=1)])
    assert "duplicate column labels ['a']" in str(err)


def test_tuple_column_labels_name_the_column(table: MergeTable) -> None:
    base = pd.DataFrame({("m", "x"): [1, 2]})
    err = conflict(table, base, [base * 2, base * 3])
    assert err.path == [("m", "x")] and "('m', 'x')" in str(err)


def test_a_dataframe_subclass_may_bring_its_merge_method(table: MergeTable, frame: pd.DataFrame) -> None:
    class Panel(pd.DataFrame):
        @property
        def _constructor(self) -> type[Panel]:
            return Panel

        @classmethod
        def __stagekit_merge__(cls, base: Any, branches: list[Any]) -> str:
            return "panel merge"

    assert table.merge(Panel(frame), [Panel(frame).assign(x=1), Panel(frame).assign(y=1)]) == "panel merge"


# --- Arrow Tables ------------------------------------------------------------------------------------


@pytest.fixture
def arrow() -> pa.Table:
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.float64())],
                       metadata={b"source": b"test"})
    return pa.table({"id": [1, 2, 3], "v": [0.5, None, math.nan]}, schema=schema)


def test_arrow_added_columns_are_joined_without_copies(table: MergeTable, arrow: pa.Table) -> None:
    left = arrow.append_column("a", pa.array([1, 2, 3]))
    right = arrow.append_column("b", pa.array(["x", "y", "z"]))
    merged = table.merge(arrow, [left, right])
    assert merged.column_names == ["id", "v", "a", "b"]
    assert merged.schema.field("id").nullable is False and merged.schema.metadata == {b"source": b"test"}
    assert merged.column("b").to_pylist() == ["x", "y", "z"]
    addresses = [b.address for b in merged.column("a").chunks[0].buffers() if b is not None]
    assert addresses == [b.address for b in left.column("a").chunks[0].buffers() if b is not None]


def test_arrow_column_conflicts_drops_and_nan(table: MergeTable, arrow: pa.Table) -> None:
    v2 = pa.array([0.5, None, math.nan])  # equal to v, NaN and null included, other memory
    merged = table.merge(arrow, [arrow.set_column(1, "v", v2).append_column("x", pa.array([0] * 3)),
                                 arrow.set_column(1, "v", pa.array([0.5, None, math.nan]))])
    assert merged.column_names == ["id", "v", "x"]
    err = conflict(table, arrow, [arrow.set_column(1, "v", pa.array([1.0, 2.0, 3.0])),
                                  arrow.set_column(1, "v", pa.array([1.0, 2.0, 4.0]))])
    assert err.path == ["v"] and "changed by several branches" in str(err)
    assert table.merge(arrow, [arrow.drop_columns(["v"]), arrow]).column_names == ["id"]
    err = conflict(table, arrow, [arrow.drop_columns(["v"]), arrow.set_column(1, "v", pa.array([1.0] * 3))])
    assert err.path == ["v"] and "dropped by one branch" in str(err)


def test_arrow_tables_with_different_row_counts_are_an_error(table: MergeTable, arrow: pa.Table) -> None:
    err = conflict(table, arrow, [arrow.slice(0, 2).append_column("x", pa.array([1, 2])),
                                  arrow.append_column("y", pa.array([1, 2, 3]))])
    assert "different numbers of rows (2, 3)" in str(err)


# --- properties --------------------------------------------------------------------------------------

_KEYS = st.sampled_from("abcdefg")
_LEAVES = st.one_of(st.integers(0, 3), st.frozensets(st.integers(0, 4), max_size=3))
_VALUES = st.one_of(_LEAVES, st.dictionaries(_KEYS, _LEAVES, max_size=3))
_EDIT = st.tuples(_KEYS, st.sampled_from(["set", "delete", "nested"]), _VALUES, _KEYS)


def _apply(base: dict[str, Any], edits: list[tuple[str, str, Any, str]]) -> dict[str, Any]:
    out = dict(base)  # unchanged keys keep the very same value objects, as a real stage's output does
    for key, op, value, inner in edits:
        if op == "delete":
            out.pop(key, None)
        elif op == "nested" and isinstance(out.get(key), dict):
            out[key] = {**out[key], inner: value if not isinstance(value, dict) else 0}
        else:
            out[key] = value
    return out


def _outcome(table: MergeTable, base: Any, branches: list[Any]) -> Any:
    try:
        return table.merge(base, branches)
    except MergeConflictError as err:
        return ("conflict", tuple(err.path))


@settings(max_examples=300, deadline=None)
@given(
    base=st.dictionaries(_KEYS, _VALUES, max_size=6),
    edits=st.lists(st.lists(_EDIT, max_size=4), min_size=2, max_size=4),
    data=st.data(),
)
def test_mapping_merge_does_not_depend_on_branch_order(
    base: dict[str, Any], edits: list[list[Any]], data: st.DataObject
) -> None:
    table = builtin_merge_table()
    branches = [_apply(base, e) for e in edits]
    shuffled = data.draw(st.permutations(branches))
    first, second = _outcome(table, base, branches), _outcome(table, base, shuffled)
    if isinstance(first, tuple) or isinstance(second, tuple):
        assert isinstance(first, tuple) and isinstance(second, tuple), (first, second)
    else:
        assert values_equal(first, second)


@settings(max_examples=200, deadline=None)
@given(
    base=st.dictionaries(_KEYS, _VALUES, max_size=6),
    edits=st.lists(st.lists(_EDIT, max_size=4), min_size=2, max_size=4),
    data=st.data(),
)
def test_mapping_merge_of_disjoint_edits_applies_them_all(
    base: dict[str, Any], edits: list[list[Any]], data: st.DataObject
) -> None:
    # branch i owns the keys with index % n == i: no two branches touch one key, so no conflict is possible
    n = len(edits)
    owned = [[e for e in branch if "abcdefg".index(e[0]) % n == i] for i, branch in enumerate(edits)]
    branches = [_apply(base, e) for e in owned]
    expected = _apply(base, [e for branch in owned for e in branch])
    table = builtin_merge_table()
    merged = table.merge(base, data.draw(st.permutations(branches)))
    assert values_equal(merged, expected)
    assert values_equal(table.merge(base, branches), expected)


@pytest.mark.parametrize("public_api_only", [False, True])
def test_columns_are_recognised_by_memory_for_every_dtype(frame: pd.DataFrame, public_api_only: bool) -> None:
    from stagekit.merge.frames import _PandasSide

    def side(df: pd.DataFrame) -> _PandasSide:
        s = _PandasSide(df)
        if public_api_only:  # as if pandas had no block manager: one Series per column
            s._blocks = None
        return s

    base, shared, copied = side(frame), side(frame.assign(x=1)), side(frame.copy())
    for pos, label in enumerate(frame.columns):
        assert base.same(pos, shared, shared.where[label]), label
        if label != "s":  # a deep copy of an Arrow-backed column shares its (immutable) buffers
            assert not base.same(pos, copied, pos), label
        assert base.equal(pos, copied, pos), label
