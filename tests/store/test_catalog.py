"""The catalog (issue 14, item 2): datasets declared in a pipeline file, read as initial artifacts when no
selected stage creates them and written, atomically, when a stage produces them. Real files in every
built-in format, through ``load_pipeline(...).run()`` and through ``stagekit run``."""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stagekit import CatalogError, Host, PipelineFileError, StageError, Workspace, hookimpl, load_pipeline, stage
from stagekit.plugins import host as host_module
from stagekit.store import builtin_formats
from stagekit.store.catalog import CatalogEntry, CatalogInput, atomic_path, load_inputs, save_outputs

HAS_OPENPYXL = importlib.util.find_spec("openpyxl") is not None
needs_openpyxl = pytest.mark.skipif(not HAS_OPENPYXL, reason="excel needs openpyxl (pip install openpyxl)")
FORMATS = builtin_formats.FORMATS


def formats_host(*plugins: object) -> Host:
    """An isolated host with the built-in formats: through the builtins once they are wired in as
    "stagekit.formats", else as a plugin passed in code (the same module, through the same hook)."""
    wired = "stagekit.store.builtin_formats" in host_module.BUILTIN_PLUGINS.values()
    return Host.isolated(*plugins) if wired else Host.isolated(builtin_formats, *plugins)


# --- a Kedro-like spaceflights project ---------------------------------------------------------------------

CALLS: list[str] = []


def preprocess_companies(companies: pd.DataFrame) -> pd.DataFrame:
    CALLS.append("preprocess_companies")
    out = companies.copy()
    out["iata_approved"] = out["iata_approved"] == "t"
    return out


def create_model_input_table(preprocessed_companies: pd.DataFrame, shuttles: pd.DataFrame) -> pd.DataFrame:
    CALLS.append("create_model_input_table")
    return shuttles.merge(preprocessed_companies, left_on="company_id", right_on="id").drop(columns=["id"])


def train_model(model_input_table: pd.DataFrame, scale: float = 1.0) -> dict[str, Any]:
    CALLS.append("train_model")
    return {"rows": len(model_input_table),
            "mean_price": float(model_input_table["price"].mean()) * scale,
            "approved": int(model_input_table["iata_approved"].sum())}


SPACEFLIGHTS = [
    stage(preprocess_companies, requires=["companies"], provides=["preprocessed_companies"]),
    stage(create_model_input_table, requires=["preprocessed_companies", "shuttles"], provides=["model_input_table"]),
    stage(train_model, requires=["model_input_table"], provides=["metrics"], params={"scale": 1.0}),
]


class Spaceflights:
    @hookimpl
    def stagekit_register_stages(self, register: Any) -> None:
        for s in SPACEFLIGHTS:
            register(s)


SPACEFLIGHTS_TOML = """\
[pipeline]
name = "spaceflights"

[catalog.companies]
path = "data/01_raw/companies.csv"

[catalog.shuttles]
path = "data/01_raw/shuttles.csv"
load_args = { sep = ";" }

[catalog.preprocessed_companies]
path = "data/02_intermediate/preprocessed_companies.parquet"

[catalog.model_input_table]
path = "data/03_primary/model_input_table.parquet"
save_args = { compression = "gzip" }

[catalog.metrics]
path = "data/08_reporting/metrics.json"
"""
COMPANIES = pd.DataFrame({"id": [1, 2, 3], "iata_approved": ["t", "f", "t"], "rating": [0.9, 0.5, 0.7]})
SHUTTLES = pd.DataFrame({"shuttle": ["a", "b", "c", "d"], "company_id": [1, 2, 3, 1],
                         "price": [100.0, 200.0, 300.0, 400.0]})
EXPECTED_METRICS = {"rows": 4, "mean_price": 250.0, "approved": 3}


def spaceflights(root: Path) -> Path:
    raw = root / "data" / "01_raw"
    raw.mkdir(parents=True)
    COMPANIES.to_csv(raw / "companies.csv", index=False)
    SHUTTLES.to_csv(raw / "shuttles.csv", index=False, sep=";")
    path = root / "pipeline.toml"
    path.write_text(SPACEFLIGHTS_TOML)
    return path


@pytest.fixture(autouse=True)
def _calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


def test_spaceflights_run_then_the_model_input_stage_alone_from_the_same_file(
        tmp_path: Path, executor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # process workers import this module's stage functions by name
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                                  os.environ.get("PYTHONPATH")])))
    path = spaceflights(tmp_path / "project")
    data = path.parent / "data"
    loaded = load_pipeline(path, host=formats_host(Spaceflights()), executor=executor)
    assert isinstance(loaded.artifacts["companies"], CatalogInput)  # nothing is read until the run starts
    assert "model_input_table" not in loaded.artifacts  # a stage creates it: written, not read
    result = loaded.run()
    assert result.artifacts["metrics"] == EXPECTED_METRICS
    assert json.loads((data / "08_reporting" / "metrics.json").read_text()) == EXPECTED_METRICS
    table = pd.read_parquet(data / "03_primary" / "model_input_table.parquet")
    pd.testing.assert_frame_equal(table, result.artifacts["model_input_table"])
    assert pq.ParquetFile(data / "03_primary" / "model_input_table.parquet").metadata.row_group(0).column(
        0).compression == "GZIP"  # save_args reached the writer

    # the raw data goes away: running the last stage alone reads only what it needs, from the catalog
    for raw in (data / "01_raw").iterdir():
        raw.unlink()
    CALLS.clear()
    alone = load_pipeline(path, host=formats_host(Spaceflights()), stages=["train_model"],
                          params={"train_model": {"scale": 2.0}}, executor=executor)
    assert sorted(n for n, v in alone.artifacts.items() if isinstance(v, CatalogInput)) == ["model_input_table"]
    again = alone.run()
    assert {n: r.status for n, r in again.stages.items()} == {"train_model": "ok"}
    assert CALLS == ["train_model"] or (executor == "process" and CALLS == [])  # workers run it elsewhere
    assert again.artifacts["metrics"] == {**EXPECTED_METRICS, "mean_price": 500.0}
    assert json.loads((data / "08_reporting" / "metrics.json").read_text())["mean_price"] == 500.0


def test_a_target_pulls_in_the_creators_of_catalog_entries_upstream(tmp_path: Path) -> None:
    """As Kedro's --to-nodes: a dataset being in the catalog does not cut the pipeline upstream of a target."""
    path = spaceflights(tmp_path)
    loaded = load_pipeline(path, host=formats_host(Spaceflights()), targets=["train_model"])
    assert [s.name for s in loaded.pipeline.stages] == [s.name for s in SPACEFLIGHTS]
    assert sorted(n for n, v in loaded.artifacts.items() if isinstance(v, CatalogInput)) == ["companies", "shuttles"]


CLI_PLUGIN = '''\
from test_catalog import SPACEFLIGHTS  # this module, importable: the fixture puts its folder on sys.path
from stagekit import hookimpl


@hookimpl
def stagekit_register_stages(register):
    for s in SPACEFLIGHTS:
        register(s)
'''


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The spaceflights stages as an installed distribution (a dist-info on sys.path), the only plugin
    allowed; the built-in formats among the builtins, as the host will have them."""
    site = tmp_path / "site"
    info = site / "skt_spaceflights-0.1.0.dist-info"
    info.mkdir(parents=True)
    (site / "skt_spaceflights.py").write_text(CLI_PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: skt-spaceflights\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[stagekit]\nspaceflights = skt_spaceflights\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    for var in ("STAGEKIT_DISABLE", "STAGEKIT_STRICT_PLUGINS", "STAGEKIT_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STAGEKIT_PLUGINS", "spaceflights")
    if "stagekit.store.builtin_formats" not in host_module.BUILTIN_PLUGINS.values():
        monkeypatch.setitem(host_module.BUILTIN_PLUGINS, "stagekit.formats", "stagekit.store.builtin_formats")
    yield
    sys.modules.pop("skt_spaceflights", None)


def test_spaceflights_through_the_cli(tmp_path: Path, installed: None, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from stagekit.cli import main

    path = spaceflights(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # paths are the pipeline file's, wherever the command runs
    assert main(["check", str(path)]) == 0, capsys.readouterr().err
    assert main(["run", str(path), "--no-progress"]) == 0, capsys.readouterr().err
    metrics = path.parent / "data" / "08_reporting" / "metrics.json"
    assert json.loads(metrics.read_text()) == EXPECTED_METRICS
    assert list(elsewhere.iterdir()) == []
    # what the command wrote is what the model-input stage alone reads, from Python, with no other file
    (path.parent / "data" / "01_raw" / "companies.csv").unlink()
    alone = load_pipeline(path, host=Host(), stages=["train_model"])  # the installed plugins, as the CLI
    assert alone.run().artifacts["metrics"] == EXPECTED_METRICS
    # a missing raw dataset: one line naming the entry and its file, and no stage has run
    capsys.readouterr()
    CALLS.clear()
    assert main(["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stagekit: error: catalog entry 'companies' ("), err
    assert "companies.csv" in err[0] and "does not exist" in err[0] and CALLS == []


# --- each built-in format, round trip ----------------------------------------------------------------------

FRAME = pd.DataFrame({"name": ["a", "b", "c"], "x": [1, 2, 3], "y": [0.5, 1.5, float("nan")],
                      "flag": [True, False, True]})


@pytest.mark.parametrize("filename", ["frame.csv", "frame.csv.gz", "frame.parquet", "frame.json",
                                      pytest.param("frame.xlsx", marks=needs_openpyxl)])
def test_a_frame_round_trips_through_each_built_in_format(tmp_path: Path, filename: str) -> None:
    entries = _entries(tmp_path, f'[catalog.frame]\npath = "out/{filename}"\n')
    assert save_outputs(entries, _result({"frame": FRAME}), FORMATS) == [str(tmp_path / "out" / filename)]
    back = load_inputs(entries, (), FORMATS)["frame"]
    pd.testing.assert_frame_equal(back, FRAME, check_dtype=filename.endswith((".parquet", ".json")))
    assert [p.name for p in (tmp_path / "out").iterdir()] == [filename]  # no temporary file left


def test_a_gzipped_csv_is_compressed(tmp_path: Path) -> None:
    entries = _entries(tmp_path, '[catalog.frame]\npath = "frame.csv.gz"\n')
    save_outputs(entries, _result({"frame": FRAME}), FORMATS)
    assert (tmp_path / "frame.csv.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_json_holds_plain_values_and_parquet_a_pyarrow_table(tmp_path: Path) -> None:
    value = {"top_n": 20, "names": ["a", "b"], "nested": {"ok": True, "none": None}}
    entries = _entries(tmp_path, '[catalog.config]\npath = "c.json"\n[catalog.table]\npath = "t.parquet"\n')
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    save_outputs(entries, _result({"config": value, "table": table}), FORMATS)
    back = load_inputs(entries, (), FORMATS)
    assert back["config"] == value
    pd.testing.assert_frame_equal(back["table"], table.to_pandas())


@needs_openpyxl
def test_excel_sheets(tmp_path: Path) -> None:
    entries = _entries(tmp_path, '[catalog.book]\npath = "book.xlsx"\nload_args = { sheet_name = "second" }\n')
    other = pd.DataFrame({"z": [9, 8]})
    save_outputs(entries, _result({"book": {"first": FRAME, "second": other}}), FORMATS)
    pd.testing.assert_frame_equal(load_inputs(entries, (), FORMATS)["book"], other)
    assert set(pd.read_excel(tmp_path / "book.xlsx", sheet_name=None)) == {"first", "second"}


def test_load_args_and_save_args_reach_pandas(tmp_path: Path) -> None:
    entries = _entries(tmp_path, """
[catalog.semi]
path = "semi.csv"
save_args = { sep = ";", index = true }
load_args = { sep = ";", index_col = 0 }

[catalog.columns]
path = "cols.parquet"
load_args = { columns = ["x"] }
save_args = { compression = "zstd" }
""")
    save_outputs(entries, _result({"semi": FRAME, "columns": FRAME}), FORMATS)
    assert (tmp_path / "semi.csv").read_text().splitlines()[0] == ";name;x;y;flag"
    back = load_inputs(entries, (), FORMATS)
    pd.testing.assert_frame_equal(back["semi"], FRAME)
    assert list(back["columns"].columns) == ["x"]
    assert pq.ParquetFile(tmp_path / "cols.parquet").metadata.row_group(0).column(0).compression == "ZSTD"


def test_fsspec_urls_reach_pandas_and_pyarrow(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    entries = _entries(tmp_path, """
[catalog.a]
path = "memory://stagekit-test/a.csv"
[catalog.b]
path = "memory://stagekit-test/b.parquet"
[catalog.c]
path = "memory://stagekit-test/c.json"
""")
    assert entries["a"].path == "memory://stagekit-test/a.csv"  # a URL is not resolved against the folder
    try:
        save_outputs(entries, _result({"a": FRAME, "b": FRAME, "c": {"k": [1, 2]}}), FORMATS)
        back = load_inputs(entries, (), FORMATS)
        pd.testing.assert_frame_equal(back["a"], FRAME)
        pd.testing.assert_frame_equal(back["b"], FRAME)
        assert back["c"] == {"k": [1, 2]}
    finally:
        fsspec.filesystem("memory").rm("/stagekit-test", recursive=True)


# --- writes are atomic -------------------------------------------------------------------------------------


def make_table() -> pd.DataFrame:
    return pd.DataFrame({"v": [2, 3]})


def read_table(table: pd.DataFrame) -> int:
    return int(table["v"].sum())


class Producer:
    @hookimpl
    def stagekit_register_stages(self, register: Any) -> None:
        register(stage(make_table, name="make_table", provides=["table"]))
        register(stage(read_table, name="read_table", requires=["table"], provides=["total"]))


def test_a_failing_writer_leaves_the_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pipeline.toml").write_text('[catalog.table]\npath = "out/table.csv"\n')
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "table.csv").write_text("v\n1\n")
    real = pd.DataFrame.to_csv

    def full_disk(self: pd.DataFrame, path: Any = None, **kwargs: Any) -> None:
        real(self, path, **kwargs)  # the data is written (to the temporary file), then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    with pytest.raises(CatalogError) as err:
        load_pipeline(tmp_path / "pipeline.toml", host=formats_host(Producer())).run()
    assert (tmp_path / "out" / "table.csv").read_text() == "v\n1\n"  # the old file, whole
    assert os.listdir(tmp_path / "out") == ["table.csv"]  # and no temporary file
    message = str(err.value)
    assert message.startswith(f"catalog entry 'table' ({tmp_path / 'out' / 'table.csv'}, format csv) cannot be "
                              "written: No space left on device")
    assert (err.value.entry, err.value.path) == ("table", str(tmp_path / "out" / "table.csv"))
    assert err.value.result is not None and err.value.result.artifacts["total"] == 5  # the run itself is kept


def test_atomic_path_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.csv.gz"
    with atomic_path(str(target)) as tmp:
        assert Path(tmp).parent == target.parent and tmp.endswith(".csv.gz") and not target.exists()
        Path(tmp).write_text("new")
    assert target.read_text() == "new"
    with contextlib.suppress(RuntimeError), atomic_path(str(target)) as tmp:
        Path(tmp).write_text("half")
        raise RuntimeError("the writer fails")
    assert target.read_text() == "new" and os.listdir(target.parent) == ["x.csv.gz"]


def test_after_a_failed_run_what_finished_is_written_and_the_error_raised(tmp_path: Path) -> None:
    def explode(table: pd.DataFrame) -> int:
        raise ZeroDivisionError("no")

    class Failing:
        @hookimpl
        def stagekit_register_stages(self, register: Any) -> None:
            register(stage(make_table, name="make_table", provides=["table"]))
            register(stage(explode, name="explode", requires=["table"], provides=["total"]))

    (tmp_path / "pipeline.toml").write_text('[catalog.table]\npath = "table.parquet"\n'
                                            '[catalog.total]\npath = "total.json"\n')
    with pytest.raises(StageError, match="explode"):
        load_pipeline(tmp_path / "pipeline.toml", host=formats_host(Failing())).run()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "table.parquet"), make_table())
    assert not (tmp_path / "total.json").exists()


# --- reading ----------------------------------------------------------------------------------------------


def test_paths_are_the_pipeline_files_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    pd.DataFrame({"v": [4, 5]}).to_csv(project / "data" / "table.csv", index=False)
    (project / "pipeline.toml").write_text('[pipeline]\nstages = ["read_table"]\n'
                                           '[catalog.table]\npath = "data/table.csv"\n'
                                           '[catalog.total]\npath = "out/total.json"\n')
    monkeypatch.chdir(tmp_path)
    result = load_pipeline("project/pipeline.toml", host=formats_host(Producer())).run()
    assert result.artifacts["total"] == 9
    assert json.loads((project / "out" / "total.json").read_text()) == 9
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()


def test_a_missing_input_is_named_before_any_stage_runs_and_check_reads_nothing(tmp_path: Path) -> None:
    path = spaceflights(tmp_path)
    (tmp_path / "data" / "01_raw" / "shuttles.csv").unlink()
    loaded = load_pipeline(path, host=formats_host(Spaceflights()))
    assert loaded.check().ok  # the check reads no data
    with pytest.raises(CatalogError) as err:
        loaded.run()
    shuttles = tmp_path / "data" / "01_raw" / "shuttles.csv"
    assert str(err.value) == f"catalog entry 'shuttles' ({shuttles}, format csv) cannot be read: the file does " \
                             "not exist"
    assert (err.value.entry, err.value.path) == ("shuttles", str(shuttles)) and CALLS == []


def test_an_entry_nobody_selected_reads_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "pipeline.toml").write_text('[pipeline]\nstages = ["make_table"]\n'
                                            '[catalog.elsewhere]\npath = "missing.csv"\n'
                                            '[catalog.table]\npath = "table.csv"\n')
    result = load_pipeline(tmp_path / "pipeline.toml", host=formats_host(Producer())).run()
    assert result.ok and (tmp_path / "table.csv").exists()


def test_a_pinned_run_reads_its_catalog_from_the_snapshot(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "data").mkdir(parents=True)
    pd.DataFrame({"v": [1, 2]}).to_csv(root / "data" / "table.csv", index=False)
    (root / "pipeline.toml").write_text('[pipeline]\nstages = ["read_table"]\n'
                                        '[catalog.table]\npath = "data/table.csv"\n')
    Workspace(root).create_snapshot("golden", ["data"])
    pd.DataFrame({"v": [100]}).to_csv(root / "data" / "table.csv", index=False)  # the live file changes
    host = formats_host(Producer())
    assert load_pipeline(root / "pipeline.toml", host=host).run().artifacts["total"] == 100
    pinned = load_pipeline(root / "pipeline.toml", host=host, snapshot="golden", workspace=root)
    assert str(root / ".stagekit") in pinned.artifacts["table"].entry.path
    assert pinned.run().artifacts["total"] == 3


# --- errors name the file and the key ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ('[catalog.a]\npath = "a.csv"\nformt = "csv"\n', "key 'catalog.a.formt': unknown key (expected one of "
                                                     "format, load_args, path, save_args)"),
    ('[catalog.a]\ntype = "pandas.CSVDataset"\nfilepath = "a.csv"\n', "key 'catalog.a.type': unknown key "
     "(expected one of format, load_args, path, save_args); Kedro's 'type' is 'format' here"),
    ('[catalog.a]\nformat = "csv"\n', "key 'catalog.a': has no path"),
    ('[catalog.a]\npath = "a.csv"\nload_args = "sep"\n', "key 'catalog.a.load_args': must be a table, not str"),
    ('[catalog.a]\npath = 3\n', "key 'catalog.a.path': must be a string, not int"),
    ("[catalog]\na = 'a.csv'\n", "key 'catalog.a': must be a table ([catalog.a] with path = \"...\"), not str"),
    ('[catalog.a]\npath = "a.csv"\nformat = "cvs"\n', "key 'catalog.a.format': unknown format 'cvs' (did you "
                                                      "mean 'csv'?); formats: csv, excel, json, parquet"),
    ('[catalog.a]\npath = "a.csv"\nformat = "pandas.CSVDataset"\n', "Kedro's pandas.CSVDataset is format 'csv'"),
    ('[catalog.a]\npath = "a.txt"\n', "key 'catalog.a.path': no format claims the extension '.txt'; name one "
                                      "with format = \"...\" (formats: csv, excel, json, parquet)"),
    ('[artifacts]\na = 3\n[catalog.a]\npath = "a.csv"\n', "key 'catalog.a': artifact 'a' is named in both "
                                                          "[artifacts] and [catalog] (artifacts.a and catalog.a)"),
])
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    with pytest.raises(PipelineFileError) as err:
        load_pipeline(path, host=formats_host(Producer()))
    assert str(err.value).startswith(f"{path}: key ")
    assert message in str(err.value)


def test_a_format_that_an_extension_names_twice_must_be_chosen(tmp_path: Path) -> None:
    class OtherCsv:
        suffixes = (".csv",)

        def read(self, path: str, **load_args: Any) -> Any:
            return Path(path).read_text()

        def write(self, value: Any, path: str, **save_args: Any) -> None:
            with atomic_path(path) as tmp:
                Path(tmp).write_text(str(value))

    class Plugin:
        @hookimpl
        def stagekit_register_formats(self, register: Any) -> None:
            register("text_csv", OtherCsv())

    path = tmp_path / "pipeline.toml"
    path.write_text('[catalog.table]\npath = "t.csv"\n')
    with pytest.raises(PipelineFileError, match="the extension '.csv' is claimed by formats 'csv' and 'text_csv'; "
                                                "choose one with format"):
        load_pipeline(path, host=formats_host(Producer(), Plugin()))
    path.write_text('[catalog.table]\npath = "t.csv"\nformat = "text_csv"\n')
    loaded = load_pipeline(path, host=formats_host(Producer(), Plugin()))
    assert loaded.catalog["table"].format == "text_csv"
    loaded.run()
    assert (tmp_path / "t.csv").read_text() == str(make_table())  # a plugin's format, through the same hook


def test_a_value_a_format_cannot_write_is_named(tmp_path: Path) -> None:
    entries = _entries(tmp_path, '[catalog.frame]\npath = "f.csv"\n')
    with pytest.raises(CatalogError, match=r"catalog entry 'frame' \(.*f.csv, format csv\) cannot be written: "
                                           "TypeError: format 'csv' writes a pandas DataFrame, not dict"):
        save_outputs(entries, _result({"frame": {"a": 1}}), FORMATS)
    assert os.listdir(tmp_path) == []


# --- helpers -----------------------------------------------------------------------------------------------


def _entries(folder: Path, text: str) -> dict[str, CatalogEntry]:
    import tomllib

    from stagekit.store.catalog import parse_catalog

    return parse_catalog(tomllib.loads(text)["catalog"], folder, source=folder / "pipeline.toml", formats=FORMATS)


def _result(artifacts: dict[str, Any]) -> Any:
    from stagekit.records import RunResult, StageRecord

    record = StageRecord("producer", status="ok", provided=tuple(artifacts))
    return RunResult("r", True, artifacts, {"producer": record}, {}, 0.0, "sequential")
