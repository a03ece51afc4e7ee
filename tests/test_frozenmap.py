from __future__ import annotations

import pickle

import pytest

from stagekit import FrozenMap, Pipeline, stage


def test_a_frozen_map_reads_like_a_dict_and_cannot_change() -> None:
    m = FrozenMap({"a": 1, "b": 2})
    assert m["a"] == 1 and list(m) == ["a", "b"] and len(m) == 2 and m == {"a": 1, "b": 2}
    with pytest.raises(TypeError):
        m["c"] = 3  # type: ignore[index]
    assert hash(m) == hash(FrozenMap([("b", 2), ("a", 1)]))
    assert pickle.loads(pickle.dumps(m)) == m and repr(m) == "FrozenMap({'a': 1, 'b': 2})"


def test_branches_merge_frozen_maps_like_mappings() -> None:
    make = stage(lambda: FrozenMap({"a": 1}), name="make", provides=["m"])
    left = stage(lambda m: FrozenMap({**m, "b": 2}), name="left", requires=["m"], provides=["m"])
    right = stage(lambda m: FrozenMap({**m, "c": 3}), name="right", requires=["m"], provides=["m"])
    assert Pipeline([make, left, right]).run().artifacts["m"] == {"a": 1, "b": 2, "c": 3}
