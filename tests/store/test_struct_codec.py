"""Tuples and FrozenMaps (and dataclass/attrs instances inside them) are stored as tagged JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from stagekit import FrozenMap, UnstorableError
from stagekit.store.builtin_codecs import builtin_codec_table

TABLE = builtin_codec_table()


@attrs.frozen
class Entry:
    stage: str
    detail: tuple[str, ...] = ()


@pytest.mark.parametrize("value", [
    (1, "a", None, 2.5), (), ((1, 2), [3, (4,)]), FrozenMap({"x": 1.0, "y": (1, 2)}),
    FrozenMap({1: "one", (2, 3): "pair"}), (Entry("s", ("a", "b")), {"k": (1,)}),
])
def test_a_structure_comes_back_as_the_types_it_was(tmp_path: Path, value: Any) -> None:
    codec = TABLE.write(value, tmp_path / "v")
    back = TABLE.read(tmp_path / "v", codec)
    assert codec == "stagekit.struct" and back == value and type(back) is type(value)
    assert _types(back) == _types(value)


def _types(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return (type(value), [_types(v) for v in value])
    if isinstance(value, dict | FrozenMap):
        return (type(value), [(_types(k), _types(v)) for k, v in value.items()])
    return type(value)


def test_equal_structures_share_a_fingerprint_and_different_ones_do_not() -> None:
    assert TABLE.fingerprint((1, 2)) == TABLE.fingerprint((1, 2))
    assert TABLE.fingerprint((1, 2)) != TABLE.fingerprint((2, 1))
    assert TABLE.fingerprint((1, 2)) != TABLE.fingerprint(((1, 2),))
    assert TABLE.fingerprint(FrozenMap({"a": 1})) != TABLE.fingerprint(({"a": 1},))


def test_what_it_cannot_hold_is_refused_naming_where() -> None:
    with pytest.raises(UnstorableError, match=r"value\[1\] is a builtins.set"):
        TABLE.fingerprint((1, {2}))
