"""Codecs: every built-in codec round-trips real files; fingerprints are stable across processes, equal for equal
content and different for different content, schema or index; a plugin's codec wins over the built-in one;
a value without a codec is not stored, and says why."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stagekit import Host, RegistrationError, hookimpl
from stagekit.plugins import host as host_module
from stagekit.store import builtin_codecs
from stagekit.store.builtin_codecs import builtin_codec_table
from stagekit.store.codecs import (
    BUILTIN_PLUGIN,
    CodecError,
    CodecTable,
    PickleCodec,
    UnstorableError,
    current_table,
    fingerprint,
)

TABLE = builtin_codec_table()


def sample_frame() -> pd.DataFrame:
    """Ints, floats with NaN, strings with a missing one, an ordered categorical with an unused category,
    datetimes with a time zone, nullable ints, a named string index."""
    return pd.DataFrame(
        {
            "i": np.arange(6, dtype="int32"),
            "f": [1.5, np.nan, 3.0, -0.0, np.inf, 6.0],
            "s": ["a", "bb", None, "déjà", "", "f"],
            "c": pd.Categorical(list("uvuvuv"), categories=["v", "u", "unused"], ordered=True),
            "t": pd.date_range("2024-03-30", periods=6, freq="12h", tz="Europe/Paris"),
            "n": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
        },
        index=pd.Index(list("pqrstu"), name="key"),
    )


@dataclasses.dataclass(frozen=True)
class Result:
    frame: pd.DataFrame
    score: float


@attrs.frozen
class Model:
    weights: np.ndarray[Any, Any]
    _label: str = "m"
    extra: dict[str, Any] = attrs.field(factory=dict)


@dataclasses.dataclass
class Nested:
    result: Result
    tags: list[str]


def sample_values() -> dict[str, Any]:
    frame = sample_frame()
    return {
        "frame": frame,
        "series": frame["f"].rename("price"),
        "table": pa.table({"a": [1, None, 3], "s": ["x", None, "z"], "d": pa.array(list("uvu")).dictionary_encode()}),
        "array": np.arange(12.0).reshape(3, 4),
        "scalar": np.float64(2.5),
        "json": {"b": [1, 2.5, None, True, "x"], "a": {"nested": "ü"}},
        "dataclass": Result(frame, 0.25),
        "attrs": Model(np.arange(3), "label", {"k": 1}),
    }


def round_trip(value: Any, tmp_path: Path, table: CodecTable = TABLE) -> Any:
    path = tmp_path / "value"
    codec = table.write(value, path)
    assert path.exists() and not list(tmp_path.glob(".value.*"))  # atomic: no temporary left behind
    return table.read(path, codec)


# --- round trips ---------------------------------------------------------------------------------------


def test_a_frame_round_trips_with_its_dtypes_and_index(tmp_path: Path) -> None:
    frame = sample_frame()
    back = round_trip(frame, tmp_path)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert list(back.dtypes) == list(frame.dtypes)
    assert list(back["c"].cat.categories) == ["v", "u", "unused"] and back["c"].cat.ordered
    assert str(back["t"].dtype.tz) == "Europe/Paris"
    assert fingerprint(back, TABLE) == fingerprint(frame, TABLE)
    assert pq.read_table(tmp_path / "value").num_rows == 6  # a plain parquet file, for any other tool


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"x": [1, 2, 3]}),  # a RangeIndex
    pd.DataFrame({"x": [1.0, 2.0]}, index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")], names=["n", "l"])),
    pd.DataFrame({1: [1, 2], 2: [3, 4]}),  # integer column labels
    pd.DataFrame(np.zeros((2, 2))),  # a RangeIndex of columns
    pd.DataFrame({("a", "x"): [1], ("a", "y"): [2]}),  # two levels of columns
    pd.DataFrame(index=pd.RangeIndex(3)),  # rows, no columns
    pd.DataFrame({"x": pd.Series([], dtype="float64")}),  # columns, no rows
    pd.DataFrame({"o": np.array([1, 2], dtype=object)}),
], ids=["range", "multiindex", "int-labels", "range-columns", "column-levels", "no-columns", "no-rows",
        "object-ints"])
def test_frames_of_every_shape_round_trip(frame: pd.DataFrame, tmp_path: Path) -> None:
    back = round_trip(frame, tmp_path)
    objects = frame.columns.tolist() == ["o"]  # Python ints in an object column come back int64
    pd.testing.assert_frame_equal(back, frame, check_dtype=not objects, check_column_type=False)
    if not objects:
        assert fingerprint(back, TABLE) == fingerprint(frame, TABLE)


def test_a_series_round_trips_with_its_name(tmp_path: Path) -> None:
    for series in (sample_frame()["t"], sample_frame()["c"].rename(None), pd.Series([1, 2], name=7),
                   pd.Series(["x"], name="key", index=pd.Index(["k"], name="key"))):
        back = round_trip(series, tmp_path)
        pd.testing.assert_series_equal(back, series, check_exact=True)
        assert back.name == series.name and fingerprint(back, TABLE) == fingerprint(series, TABLE)


def test_an_arrow_table_round_trips_with_its_schema(tmp_path: Path) -> None:
    table = sample_values()["table"].replace_schema_metadata({b"origin": b"test"})
    table = pa.concat_tables([table, table.slice(1)])  # two chunks
    back = round_trip(table, tmp_path)
    assert back.equals(table, check_metadata=True) and back.schema == table.schema
    assert fingerprint(back, TABLE) == fingerprint(table, TABLE)


@pytest.mark.parametrize("array", [
    np.arange(12.0).reshape(3, 4),
    np.asfortranarray(np.arange(6).reshape(2, 3)),
    np.array([1.0, np.nan, -np.inf]),
    np.array(["2024-01-01", "NaT"], dtype="datetime64[ns]"),
    np.array(["a", "déjà"]),
    np.array(5),
    np.zeros((0, 3), dtype=">i4"),
    np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
], ids=["2d", "fortran", "nan", "datetime", "unicode", "0d", "empty-bigendian", "structured"])
def test_arrays_round_trip_as_npy(array: np.ndarray[Any, Any], tmp_path: Path) -> None:
    back = round_trip(array, tmp_path)
    assert type(back) is np.ndarray and back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.f_contiguous == array.flags.f_contiguous
    assert fingerprint(back, TABLE) == fingerprint(array, TABLE)


def test_numpy_scalars_come_back_as_scalars(tmp_path: Path) -> None:
    for scalar in (np.float64(2.5), np.int8(-3), np.datetime64("2024-01-01T12:00"), np.bool_(True)):
        back = round_trip(scalar, tmp_path)
        assert type(back) is type(scalar) and back == scalar
    assert fingerprint(np.int64(5), TABLE) != fingerprint(np.array(5), TABLE)


class Frame(pd.DataFrame):
    pass


class Text(str):
    pass


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # numpy.matrix
def test_subclasses_that_would_come_back_as_their_base_are_not_taken() -> None:
    for value in (np.ma.masked_array([1, 2], mask=[True, False]), np.matrix([[1, 2]]), Frame({"x": [1]}),
                  OrderedDict(a=1), Text("x")):
        assert fingerprint(value, TABLE) is None, type(value)
        assert TABLE.why_not(type(value)) is not None
    assert TABLE.why_not(bool) is None and TABLE.why_not(np.ndarray) is None


def test_an_object_array_is_refused_not_pickled(tmp_path: Path) -> None:
    with pytest.raises(UnstorableError, match=r"dtype object holds Python objects.*pickle"):
        TABLE.write(np.array([{"a": 1}, None], dtype=object), tmp_path / "x")
    assert fingerprint(np.array([1, "a"], dtype=object), TABLE) is None
    assert not list(tmp_path.iterdir())


def test_json_values_round_trip_keeping_key_order(tmp_path: Path) -> None:
    values: list[Any] = [{"b": [1, 2.5, None, True, "x"], "a": {"nested": "ü", "n": float("nan")}}, [], "text", 3,
                         2.0, False, None]
    for value in values:
        back = round_trip(value, tmp_path)
        assert type(back) is type(value) and json.dumps(back) == json.dumps(value)
    assert list(round_trip({"z": 1, "a": 2}, tmp_path)) == ["z", "a"]
    assert json.loads((tmp_path / "value").read_text()) == {"z": 1, "a": 2}  # plain JSON on disk


@pytest.mark.parametrize(("value", "why"), [
    ({"k": (1, 2)}, r"value\['k'\] holds a tuple, which would come back as a list"),
    ({1: "a"}, r"has the key 1 \(int\); JSON keys are strings"),
    ([{1, 2}], r"value\[0\] holds a set"),
    ([np.float64(1.0)], r"value\[0\] holds a numpy.float64"),
    ({"k": OrderedDict(a=1)}, r"value\['k'\] holds a collections.OrderedDict"),
    (OrderedDict(a=1), r"no codec is registered for collections.OrderedDict"),
])
def test_values_json_would_not_give_back_are_refused(value: Any, why: str) -> None:
    with pytest.raises(UnstorableError, match=why):
        TABLE.fingerprint(value)
    assert fingerprint(value, TABLE) is None


def test_a_dataclass_of_a_frame_and_a_number_round_trips_through_its_fields_codecs(tmp_path: Path) -> None:
    value = Result(sample_frame(), 0.25)
    back = round_trip(value, tmp_path)
    assert type(back) is Result and back.score == 0.25
    pd.testing.assert_frame_equal(back.frame, value.frame)
    assert fingerprint(back, TABLE) == fingerprint(value, TABLE)
    import zipfile

    with zipfile.ZipFile(tmp_path / "value") as zf:
        manifest = json.loads(zf.read("fields.json"))
    assert manifest["class"] == f"{__name__}:Result"
    assert [(f["name"], f["codec"]) for f in manifest["fields"]] == [
        ("frame", "stagekit.parquet-frame"), ("score", "stagekit.json")]


def test_attrs_classes_and_nested_dataclasses_round_trip(tmp_path: Path) -> None:
    model = Model(np.arange(3), "label", {"k": [1, 2]})
    back = round_trip(model, tmp_path)
    assert type(back) is Model and back._label == "label" and back.extra == {"k": [1, 2]}
    np.testing.assert_array_equal(back.weights, model.weights)
    nested = Nested(Result(sample_frame(), 1.0), ["a"])
    again = round_trip(nested, tmp_path)
    assert again.tags == ["a"] and again.result.score == 1.0
    assert fingerprint(again, TABLE) == fingerprint(nested, TABLE)


def test_a_dataclass_that_cannot_be_rebuilt_or_stored_is_refused_naming_the_field() -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    @dataclasses.dataclass
    class Holder:
        x: Any

    with pytest.raises(UnstorableError, match="defined inside a function"):
        TABLE.fingerprint(Local(1))
    Holder.__qualname__ = "Holder"  # as if defined at module level
    with pytest.raises(UnstorableError, match=r"field 'x' of .*Holder: no codec is registered for object"):
        TABLE.fingerprint(Holder(object()))
    with pytest.raises(UnstorableError, match=r"field 'x' of .*Holder: not storable as JSON"):
        TABLE.fingerprint(Holder({"k": (1,)}))


@dataclasses.dataclass
class Derived:
    a: int
    b: int = dataclasses.field(init=False, default=0)


def test_a_dataclass_field_outside_init_is_refused() -> None:
    with pytest.raises(UnstorableError, match=r"field\(s\) 'b' that __init__ does not take"):
        TABLE.fingerprint(Derived(1))


# --- fingerprints ----------------------------------------------------------------------------------------


def test_fingerprints_are_stable_across_processes() -> None:
    here = {name: fingerprint(value, TABLE) for name, value in sample_values().items()}
    assert all(here.values())
    code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            "import test_codecs as t\n"
            "from stagekit.store.codecs import fingerprint\n"
            "print(json.dumps({n: fingerprint(v, t.TABLE) for n, v in t.sample_values().items()}))")
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        assert json.loads(out.stdout) == here


def test_equal_content_gives_equal_fingerprints() -> None:
    frame = sample_frame()
    same = [
        (frame, frame.copy(deep=True)),
        (frame, pd.concat([frame.iloc[:2], frame.iloc[2:]])),
        (frame["f"], frame["f"].copy()),
        (pa.table(frame), pa.concat_tables([pa.table(frame).slice(0, 3), pa.table(frame).slice(3)])),
        (pa.table(frame).slice(2), pa.table(frame.iloc[2:])),
        (np.arange(10.0), np.arange(20.0)[:10].copy()),
        (np.arange(10.0)[::2], np.array([0.0, 2.0, 4.0, 6.0, 8.0])),  # a strided view hashes its values
        ({"a": [1, 2]}, {"a": [1, 2]}),
        (Result(frame, 1.0), Result(frame.copy(), 1.0)),
    ]
    for a, b in same:
        assert fingerprint(a, TABLE) == fingerprint(b, TABLE), type(a)


def test_different_content_schema_or_index_gives_different_fingerprints() -> None:
    frame = sample_frame()
    variants = {
        "base": frame,
        "a value": frame.assign(f=frame["f"].fillna(0.0)),
        "a column name": frame.rename(columns={"f": "g"}),
        "column order": frame[["f", "i", "s", "c", "t", "n"]],
        "a dtype, same values": frame.astype({"i": "int64"}),
        "categories": frame.assign(c=frame["c"].cat.remove_unused_categories()),
        "category order": frame.assign(c=frame["c"].cat.reorder_categories(["u", "v", "unused"])),
        "time zone, same instants": frame.assign(t=frame["t"].dt.tz_convert("UTC")),
        "index values": frame.set_axis(list("PQRSTU")),
        "index name": frame.rename_axis("other"),
        "index kind": frame.reset_index(drop=True),
        "fewer rows": frame.iloc[:-1],
        "row order": frame.iloc[::-1],
        "columns name": frame.rename_axis(columns="cols"),
    }
    fps = {name: fingerprint(v, TABLE) for name, v in variants.items()}
    assert len(set(fps.values())) == len(fps), fps
    ints = pd.DataFrame({"x": [1, 2]})
    assert fingerprint(ints, TABLE) != fingerprint(pd.DataFrame({"x": ["1", "2"]}), TABLE)
    assert fingerprint(ints, TABLE) != fingerprint(ints.astype(object), TABLE)
    assert fingerprint(pd.DataFrame({"x": [1, 2]}, dtype=object), TABLE) != fingerprint(
        pd.DataFrame({"x": ["1", "2"]}, dtype=object), TABLE)  # hash_pandas_object alone confuses these


def test_other_values_differ_by_content_and_type() -> None:
    values = [np.arange(3), np.arange(3.0), np.arange(3).reshape(1, 3), np.arange(3).astype(">i8"), np.arange(1, 4),
              pa.table({"a": [1, 2]}), pa.table({"a": [1, 3]}), pa.table({"b": [1, 2]}),
              pa.table({"a": pa.array([1, 2], pa.int32())}), 1, 1.0, True, "1", [1], {"1": 1}, None,
              {"a": 1, "b": 2}, {"b": 2, "a": 1}, np.int64(1), pd.Series([1], name="a"), pd.Series([1], name="b"),
              pd.DataFrame({"a": [1]})]
    fps = [fingerprint(v, TABLE) for v in values]
    assert None not in fps and len(set(fps)) == len(fps)


def test_an_object_column_mixing_strings_and_numbers_is_refused() -> None:
    mixed = pd.DataFrame({"x": [1, "1"]}, dtype=object)
    with pytest.raises(UnstorableError, match=r"column 'x' mixes strings with other values"):
        TABLE.fingerprint(mixed)
    with pytest.raises(UnstorableError, match="duplicate column names"):
        TABLE.fingerprint(pd.DataFrame([[1, 2]], columns=["a", "a"]))
    with pytest.raises(UnstorableError, match="column names are of mixed types"):
        TABLE.fingerprint(pd.DataFrame([[1, 2]], columns=["a", 1]))


# --- no codec, plugins, pickle ---------------------------------------------------------------------------


class Opaque:
    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.n == self.n

    __hash__ = None  # type: ignore[assignment]


def test_a_value_without_a_codec_has_no_fingerprint_and_says_why(tmp_path: Path) -> None:
    assert fingerprint(Opaque(1), TABLE) is None
    assert fingerprint({1, 2}, TABLE) is None
    why = TABLE.why_not(Opaque)
    assert why is not None and f"no codec is registered for {__name__}.Opaque" in why
    assert "stagekit_register_codecs" in why and "PickleCodec" in why
    assert TABLE.why_not(pd.DataFrame) is None and TABLE.why_not(Result) is None
    with pytest.raises(UnstorableError) as info:
        TABLE.write(Opaque(1), tmp_path / "x")
    assert info.value.value_type is Opaque and info.value.reason == why
    assert isinstance(info.value, TypeError) and not list(tmp_path.iterdir())


class FrameAsCsv:
    """A plugin's DataFrame codec (CSV, to tell it apart)."""

    name = "tests.csv-frame"
    suffix = ".csv"

    def write(self, value: pd.DataFrame, path: str) -> None:
        value.to_csv(path)

    def read(self, path: str) -> pd.DataFrame:
        return pd.read_csv(path, index_col=0)

    def fingerprint(self, value: pd.DataFrame) -> str:
        return "csv-" + str(len(value))


class CsvPlugin:
    @hookimpl
    def stagekit_register_codecs(self, register: Any) -> None:
        register("pandas.DataFrame", FrameAsCsv())
        register(Opaque, PickleCodec())


@pytest.fixture
def with_builtin_codecs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's built-in plugins include the codecs (as they will once registered there)."""
    monkeypatch.setitem(host_module.BUILTIN_PLUGINS, BUILTIN_PLUGIN, "stagekit.store.builtin_codecs")


def test_a_plugins_codec_wins_over_the_builtin_one_for_its_type(with_builtin_codecs: None, tmp_path: Path) -> None:
    host = Host.isolated(CsvPlugin())
    assert host.record(BUILTIN_PLUGIN).status == "loaded"
    assert host.record(BUILTIN_PLUGIN).registered["codecs"][0] == "pandas.DataFrame"
    table = CodecTable.from_registrations(host.registry.codecs)
    frame = pd.DataFrame({"x": [1, 2]})
    reg = table.codec_for(frame)
    assert isinstance(reg.codec, FrameAsCsv) and "CsvPlugin" in reg.origin
    assert table.write(frame, tmp_path / "f") == "tests.csv-frame"
    assert (tmp_path / "f").read_text().startswith(",x")
    pd.testing.assert_frame_equal(table.read(tmp_path / "f", "tests.csv-frame"), frame)
    assert table.codec_for(pd.Series([1])).codec.name == "stagekit.parquet-series"  # the rest stay built in
    earlier = TABLE.write(frame, tmp_path / "earlier")  # written by the built-in codec before the plugin came
    pd.testing.assert_frame_equal(table.read(tmp_path / "earlier", earlier), frame)
    assert table.codec_for(Opaque(1)).codec.name == "stagekit.pickle"
    assert table.read(tmp_path / "o", table.write(Opaque(3), tmp_path / "o")) == Opaque(3)
    assert fingerprint(Opaque(3), table) == fingerprint(Opaque(3), table) != fingerprint(Opaque(4), table)


def test_two_plugins_claiming_one_type_are_both_named(with_builtin_codecs: None) -> None:
    class Other:
        @hookimpl
        def stagekit_register_codecs(self, register: Any) -> None:
            register(pd.DataFrame, FrameAsCsv())

    host = Host.isolated(("csv-one", CsvPlugin()), ("csv-two", Other()))
    with pytest.raises(RegistrationError, match=r"two codecs claim pandas.DataFrame: one registered by plugin "
                                                r"'csv-one', the other by plugin 'csv-two'"):
        CodecTable.from_registrations(host.registry.codecs)


def test_pickle_is_off_unless_registered() -> None:
    names = {reg.codec.name for reg in TABLE}
    assert "stagekit.pickle" not in names
    assert fingerprint(Opaque(1), TABLE) is None


def test_a_thing_that_is_not_a_codec_is_refused_and_codec_names_are_unique() -> None:
    table = CodecTable()
    with pytest.raises(RegistrationError, match=r"plugin 'p' registered a codec for .*lacks write, read, fingerprint"):
        table.add(Opaque, object(), "plugin 'p'")  # type: ignore[arg-type]

    class Impostor(FrameAsCsv):
        name = "stagekit.json"

    table.add(dict, builtin_codecs.JsonCodec(), "plugin 'a'")
    table.add(list, builtin_codecs.JsonCodec(), "plugin 'a'")  # the same codec for two types is fine
    with pytest.raises(RegistrationError, match=r"two codecs are named 'stagekit.json'"):
        table.add(Opaque, Impostor(), "plugin 'b'")


# --- faults ----------------------------------------------------------------------------------------------


class Broken:
    name = "tests.broken"
    suffix = ".bin"

    def write(self, value: Any, path: str) -> None:
        with open(path, "wb") as f:
            f.write(b"half")
        raise KeyError("oops")

    def read(self, path: str) -> Any:
        raise SystemExit(3)

    def fingerprint(self, value: Any) -> str:
        return 42  # type: ignore[return-value]


def test_a_failing_codec_is_named_and_leaves_the_old_file(tmp_path: Path) -> None:
    table = CodecTable()
    table.add(Opaque, Broken(), "plugin 'bugs' (distribution bugs 1.0)")
    target = tmp_path / "x"
    target.write_bytes(b"old")
    with pytest.raises(CodecError) as info:
        table.write(Opaque(1), target)
    assert str(info.value) == ("the codec 'tests.broken' registered by plugin 'bugs' (distribution bugs 1.0) raised "
                               "KeyError in write: 'oops'")
    assert info.value.origin == "plugin 'bugs' (distribution bugs 1.0)" and isinstance(info.value.__cause__, KeyError)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x"]
    with pytest.raises(CodecError, match="raised SystemExit in read"):
        table.read(target, "tests.broken")
    with pytest.raises(CodecError, match="returned 42 as a fingerprint"):
        table.fingerprint(Opaque(1))


def test_a_corrupt_or_unknown_file_is_a_codec_error(tmp_path: Path) -> None:
    path = tmp_path / "frame"
    codec = TABLE.write(sample_frame(), path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    path.chmod(0o644)
    path.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(CodecError, match=r"the codec 'stagekit.parquet-frame' registered by plugin 'stagekit.codecs'"):
        TABLE.read(path, codec)
    with pytest.raises(CodecError, match=r"no codec named 'gone.codec' is registered \(known: .*stagekit.json"):
        TABLE.read(path, "gone.codec")


def test_written_files_are_read_only_and_can_be_replaced(tmp_path: Path) -> None:
    path = tmp_path / "v"
    TABLE.write({"a": 1}, path)
    assert path.stat().st_mode & 0o777 == 0o444
    TABLE.write({"a": 2}, path, fsync=False, permissions=0o640)
    assert json.loads(path.read_text()) == {"a": 2} and path.stat().st_mode & 0o777 == 0o640


def test_the_table_travels_without_its_cache_and_runs_nested_codecs_through_itself(tmp_path: Path) -> None:
    TABLE.lookup(dict)
    clone = pickle.loads(pickle.dumps(TABLE))
    assert [r.codec.name for r in clone] == [r.codec.name for r in TABLE]
    assert clone.fingerprint(Result(sample_frame(), 1.0)) == TABLE.fingerprint(Result(sample_frame(), 1.0))
    seen: list[Any] = []

    class Spy(builtin_codecs.JsonCodec):
        def fingerprint(self, value: Any) -> str:
            seen.append(current_table())
            return super().fingerprint(value)

    table = CodecTable()
    table.add(object, builtin_codecs.FieldsCodec(), "plugin 'fields'")
    table.add(float, Spy(), "plugin 'spy'")
    table.add("pandas.DataFrame", builtin_codecs.FrameCodec(), "plugin 'frames'")
    assert table.fingerprint(Result(sample_frame(), 1.0))
    assert seen == [table] and current_table() is None


def test_importing_and_building_the_codecs_imports_no_heavy_library() -> None:
    code = ("import sys\n"
            "from stagekit.store.builtin_codecs import builtin_codec_table\n"
            "from stagekit.store.codecs import fingerprint\n"
            "import stagekit.store.fingerprints\n"
            "t = builtin_codec_table()\n"
            "assert fingerprint({'a': [1, 2.5]}, t) and t.why_not(dict) is None\n"
            "print(','.join(m for m in ('pandas', 'pyarrow', 'numpy', 'pandera') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
