"""The merge dispatch: registration, MRO resolution, the top-level three-way rules, equality, reprs."""

from __future__ import annotations

import collections
import math
import subprocess
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from stagekit import MergeError, MergeTable, builtin_merge_table, merge_values, values_equal
from stagekit.errors import MergeConflictError, RegistrationError, StagekitError
from stagekit.merge.describe import short_repr, type_name


def _tag(label: str) -> Any:
    """A merge that records which registration handled the values."""

    def merge(base: Any, branches: list[Any]) -> Any:
        return (label, base, list(branches))

    return merge


class Animal:
    pass


class Dog(Animal):
    pass


class Puppy(Dog):
    pass


# --- registration ----------------------------------------------------------------------------------


def test_duplicate_registration_names_both_origins() -> None:
    table = MergeTable()
    table.add(Dog, _tag("a"), "plugin 'kennel' (distribution kennel-dist 1.2)")
    with pytest.raises(RegistrationError) as info:
        table.add(Dog, _tag("b"), "plugin 'pound' (distribution pound-dist 0.3)")
    message = str(info.value)
    assert "plugin 'kennel' (distribution kennel-dist 1.2)" in message
    assert "plugin 'pound' (distribution pound-dist 0.3)" in message
    assert type_name(Dog) in message
    assert isinstance(info.value, StagekitError) and isinstance(info.value, ValueError)


def test_a_class_and_its_name_are_the_same_claim() -> None:
    table = MergeTable()
    table.add("pandas.DataFrame", _tag("by name"), "plugin 'one'")
    with pytest.raises(RegistrationError, match=r"plugin 'one'.*plugin 'two'"):
        table.add(pd.DataFrame, _tag("by class"), "plugin 'two'")
    table2 = MergeTable()
    table2.add(Dog, _tag("class"), "plugin 'one'")
    with pytest.raises(RegistrationError, match=r"plugin 'one'.*plugin 'two'"):
        table2.add(type_name(Dog), _tag("name"), "plugin 'two'")


@pytest.mark.parametrize("bad", ["DataFrame", ".x", "a..b", "pandas."])
def test_a_type_name_must_be_module_dot_qualname(bad: str) -> None:
    with pytest.raises(RegistrationError, match=r"module.QualName"):
        MergeTable().add(bad, _tag("x"), "plugin 'p'")


def test_registering_something_that_is_not_a_type_or_not_callable_fails() -> None:
    table = MergeTable()
    with pytest.raises(RegistrationError, match=r"plugin 'p'.*neither a class"):
        table.add(42, _tag("x"), "plugin 'p'")  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match=r"plugin 'p'.*not callable"):
        table.add(Dog, "merge", "plugin 'p'")  # type: ignore[arg-type]
    assert len(table) == 0


def test_registrations_keep_their_order_and_origin() -> None:
    table = MergeTable()
    table.add(Dog, _tag("dog"), "plugin 'a'")
    table.add("pandas.DataFrame", _tag("df"), "plugin 'b'")
    table.add(Animal, _tag("animal"), "plugin 'c'")
    assert [(r.type_label, r.origin) for r in table] == [
        (type_name(Dog), "plugin 'a'"),
        ("pandas.DataFrame", "plugin 'b'"),
        (type_name(Animal), "plugin 'c'"),
    ]


# --- resolution --------------------------------------------------------------------------------------


def test_resolution_follows_the_mro_most_specific_first() -> None:
    table = MergeTable()
    table.add(object, _tag("object"), "o")
    table.add(Animal, _tag("animal"), "a")
    table.add(Dog, _tag("dog"), "d")
    assert table.lookup(Puppy).origin == "d"  # type: ignore[union-attr]
    assert table.lookup(Dog).origin == "d"  # type: ignore[union-attr]
    assert table.lookup(Animal).origin == "a"  # type: ignore[union-attr]
    assert table.lookup(int).origin == "o"  # type: ignore[union-attr]


def test_a_new_registration_invalidates_the_cache() -> None:
    table = MergeTable()
    table.add(Animal, _tag("animal"), "a")
    assert table.lookup(Puppy).origin == "a"  # type: ignore[union-attr]
    table.add(Puppy, _tag("puppy"), "p")
    assert table.lookup(Puppy).origin == "p"  # type: ignore[union-attr]


def test_string_names_match_classes_in_the_mro_without_importing() -> None:
    table = MergeTable()
    table.add(type_name(Dog), _tag("dog by name"), "d")
    table.add(object, _tag("object"), "o")
    assert table.lookup(Puppy).origin == "d"  # type: ignore[union-attr]
    table.add("pyarrow.lib.Table", _tag("arrow"), "t")
    assert table.lookup(pa.Table).origin == "t"  # type: ignore[union-attr]
    assert type_name(pd.DataFrame) == "pandas.DataFrame"


def test_abstract_base_classes_apply_to_virtual_subclasses_before_object() -> None:
    table = MergeTable()
    table.add(object, _tag("object"), "o")
    table.add(Mapping, _tag("mapping"), "m")
    table.add(MutableMapping, _tag("mutable"), "mm")
    assert table.lookup(dict).origin == "mm"  # type: ignore[union-attr]
    assert table.lookup(collections.OrderedDict).origin == "mm"  # type: ignore[union-attr]
    assert table.lookup(type({}.items())).origin == "o"  # type: ignore[union-attr]
    table.add(dict, _tag("dict"), "d")
    assert table.lookup(collections.OrderedDict).origin == "d"  # type: ignore[union-attr]


def test_abc_registered_after_caching_is_seen() -> None:
    class Bag:
        pass

    table = MergeTable()
    table.add(object, _tag("object"), "o")
    table.add(Sequence, _tag("sequence"), "s")
    assert table.lookup(Bag).origin == "o"  # type: ignore[union-attr]
    Sequence.register(Bag)
    assert table.lookup(Bag).origin == "s"  # type: ignore[union-attr]


def test_two_unrelated_abcs_at_one_rank_are_ambiguous_naming_both() -> None:
    class Both(Mapping[str, int], Sequence[int]):  # type: ignore[misc]
        pass

    class Plain:
        pass

    Mapping.register(Plain)
    Sequence.register(Plain)
    table = MergeTable()
    table.add(Mapping, _tag("m"), "plugin 'maps'")
    table.add(Sequence, _tag("s"), "plugin 'seqs'")
    assert table.lookup(Both) is not None  # real bases: the MRO decides
    with pytest.raises(RegistrationError, match=r"ambiguous.*plugin 'maps'.*plugin 'seqs'"):
        table.lookup(Plain)


def test_supports_asks_the_merge_when_it_can_tell() -> None:
    table = builtin_merge_table()
    assert table.supports(dict)
    assert table.supports(frozenset)
    assert table.supports(pd.DataFrame)
    assert not table.supports(int)  # only the catch-all, which cannot combine two ints
    assert not MergeTable().supports(dict)


# --- the top-level merge ------------------------------------------------------------------------------


def test_unchanged_branches_are_dropped_and_a_single_change_wins() -> None:
    table = MergeTable()  # empty: nothing may be dispatched here
    base = object()
    new = object()
    assert table.merge(base, []) is base
    assert table.merge(base, [base, base]) is base
    assert table.merge(base, [base, new, base]) is new
    assert table.merge(None, [None, 5]) == 5


def test_equal_changes_need_no_merge() -> None:
    table = MergeTable()
    a = np.arange(5.0)
    b = np.arange(5.0)
    assert table.merge(None, [a, b]) is a
    frame = pd.DataFrame({"x": [1.0, math.nan]})
    assert table.merge(None, [frame, frame.copy()]) is frame


def test_plain_values_changed_to_different_values_conflict() -> None:
    with pytest.raises(MergeConflictError, match=r"no merge is registered for int.*2, 3"):
        MergeTable().merge(1, [2, 3])
    with pytest.raises(MergeConflictError, match=r"str has no merge.*from 'a' to different values: 'b', 'c'"):
        builtin_merge_table().merge("a", ["b", "c"])


def test_branches_of_different_types_conflict_saying_so() -> None:
    with pytest.raises(MergeConflictError, match=r"different types \(int, str\)"):
        builtin_merge_table().merge(None, [1, "1"])


def test_dispatch_passes_base_and_only_the_changed_branches_in_order() -> None:
    table = MergeTable()
    table.add(Dog, _tag("dog"), "d")
    base, x, y = Dog(), Puppy(), Puppy()
    assert table.merge(base, [x, base, y]) == ("dog", base, [x, y])


def test_an_unexpected_error_in_a_merge_names_its_origin() -> None:
    def broken(base: Any, branches: list[Any]) -> Any:
        raise KeyError("oops")

    table = MergeTable()
    table.add(Dog, broken, "plugin 'kennel' (distribution kennel 1.0)")
    with pytest.raises(MergeError) as info:
        table.merge(None, [Dog(), Dog()])
    assert str(info.value) == ("merging: the merge for test_table.Dog registered by plugin 'kennel' (distribution "
                               "kennel 1.0) raised KeyError: 'oops'")
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.origin == "plugin 'kennel' (distribution kennel 1.0)"


def test_an_exit_in_a_merge_is_a_merge_error_too() -> None:
    def leaves(base: Any, branches: list[Any]) -> Any:
        raise SystemExit(4)

    table = MergeTable()
    table.add(Dog, leaves, "p")
    with pytest.raises(MergeError, match="raised SystemExit: 4"):
        table.merge(None, [Dog(), Dog()])


def test_merge_values_uses_the_table_of_the_running_merge() -> None:
    class Counter:
        def __init__(self, n: int) -> None:
            self.n = n

    def merge_counters(base: Counter | None, branches: list[Counter]) -> Counter:
        start = base.n if base else 0
        return Counter(start + sum(b.n - start for b in branches))

    def merge_boxes(base: Any, branches: list[Any]) -> Any:
        return {"inner": merge_values(base["inner"], [b["inner"] for b in branches])}

    class Box(dict):  # type: ignore[type-arg]
        pass

    table = MergeTable()
    table.add(Counter, merge_counters, "counters")
    table.add(Box, merge_boxes, "boxes")
    base = Box(inner=Counter(10))
    merged = table.merge(base, [Box(inner=Counter(13)), Box(inner=Counter(11))])
    assert merged["inner"].n == 14


def test_merge_values_outside_a_merge_uses_the_builtin_merges() -> None:
    assert merge_values({"a": 1}, [{"a": 1, "b": 2}, {"a": 1, "c": 3}]) == {"a": 1, "b": 2, "c": 3}
    with pytest.raises(MergeConflictError):
        merge_values(1, [2, 3])


# --- equality ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1, True),
        (1, 1.0, False),  # types differ
        (True, 1, False),
        (math.nan, math.nan, True),
        ({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, {"b": 1}, False),
        ((1, 2), (1, 2, 3), False),
        ({1, 2}, {2, 1}, True),
        (np.array([1.0, np.nan]), np.array([1.0, np.nan]), True),
        (np.array([1, 2]), np.array([1.0, 2.0]), False),  # dtype matters
        (np.array([1, 2]), np.array([[1, 2]]), False),
        (np.array(["a", "b"]), np.array(["a", "b"]), True),
        (np.array([np.datetime64("NaT")]), np.array([np.datetime64("NaT")]), True),
        (np.float64("nan"), np.float64("nan"), True),
        (np.int64(3), np.int64(4), False),
        ({"k": np.arange(3)}, {"k": np.arange(3)}, True),
        ([np.arange(3)], [np.arange(4)], False),
        (pd.DataFrame({"a": [1, None]}), pd.DataFrame({"a": [1, None]}), True),
        (pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [1.0, 2.0]}), False),
        (pd.Series([1, 2]), pd.Series([1, 3]), False),
        (pa.table({"a": [1.0, math.nan]}), pa.table({"a": [1.0, math.nan]}), True),
        (pa.table({"a": [1.0, None]}), pa.table({"a": [1.0, 2.0]}), False),
        (pa.chunked_array([[1, 2]]), pa.chunked_array([[1], [2]]), True),
    ],
)
def test_values_equal_is_type_aware(a: Any, b: Any, equal: bool) -> None:
    assert values_equal(a, b) is equal
    assert values_equal(b, a) is equal


def test_values_equal_never_raises_the_ambiguous_truth_value_error() -> None:
    class Weird:
        def __eq__(self, other: object) -> Any:
            return np.array([True, False])

    assert values_equal(np.array([1, 2], dtype=object), np.array([1, 2], dtype=object))
    ragged = np.array([np.arange(2), 1], dtype=object)
    assert not values_equal(ragged, np.array([np.arange(3), 1], dtype=object))
    assert not values_equal(Weird(), Weird())
    assert not values_equal({"x": pd.Series([1])}, {"x": pd.Series([2])})


# --- reprs -------------------------------------------------------------------------------------------


def test_short_repr_is_one_short_line() -> None:
    frame = pd.DataFrame({f"column{i}": range(1000) for i in range(50)})
    for value in [frame, frame["column3"], np.arange(10**6), "x" * 500, list(range(1000)),
                  {"k": "v" * 300}, pa.table(frame), pa.chunked_array([range(100)])]:
        text = short_repr(value)
        assert len(text) <= 80 and "\n" not in text, text
    assert short_repr(frame).startswith("DataFrame(1000 rows, columns ['column0'")
    assert short_repr(np.arange(10**6)).startswith("ndarray((1000000,), int64: [0, 1, 2, ...]")


def test_short_repr_survives_a_broken_repr() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert "Broken" in short_repr(Broken())


# --- imports -----------------------------------------------------------------------------------------


def test_importing_the_merge_modules_imports_no_heavy_library() -> None:
    code = (
        "import sys, stagekit.merge.table, stagekit.merge.builtin\n"
        "from stagekit import builtin_merge_table\n"
        "t = builtin_merge_table()\n"
        "assert t.merge({'a': 1}, [{'a': 2}, {'a': 2, 'b': 1}]) == {'a': 2, 'b': 1}\n"
        "heavy = [m for m in ('pandas', 'pyarrow', 'pandera', 'numpy') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported: {out.stdout.strip()}"


def test_a_table_pickles_with_its_registrations_for_remote_merges() -> None:
    import pickle

    table = builtin_merge_table()
    table.lookup(dict)  # fill the cache; it must not travel
    clone = pickle.loads(pickle.dumps(table))
    assert [(r.type_label, r.origin) for r in clone] == [(r.type_label, r.origin) for r in table]
    assert clone.merge({"a": 1}, [{"a": 2}, {"a": 1, "b": 0}]) == {"a": 2, "b": 0}
    err = pickle.loads(pickle.dumps(MergeConflictError("why", path=["k"]).at("outer")))
    assert err.path == ["outer", "k"] and err.reason == "why"


def test_dataframe_equality_skips_shared_columns_and_stops_at_the_first_difference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = pd.DataFrame({"a": np.arange(5.0), "b": np.arange(5), "c": list("abcde")})
    compared: list[Any] = []
    real = pd.Series.equals

    def counting(self: pd.Series, other: Any) -> bool:
        compared.append(self.name)
        return bool(real(self, other))

    monkeypatch.setattr(pd.Series, "equals", counting)
    assert values_equal(base, base.copy(deep=False))
    assert compared == []  # every column shares memory
    assert not values_equal(base.assign(a=-1.0), base.assign(b=-1))
    assert compared == ["a"]
    assert values_equal(base.assign(a=1.0), base.assign(a=1.0))
    assert not values_equal(base, base[["b", "a", "c"]])  # column order matters
    assert not values_equal(base, base.set_axis(list("vwxyz")))
    dup = pd.DataFrame([[1, 2]], columns=["x", "x"])
    assert values_equal(dup, dup.copy()) and not values_equal(dup, dup * 2)
