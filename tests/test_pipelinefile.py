from __future__ import annotations

from pathlib import Path

import pytest

from stagekit import PipelineFileError
from stagekit.pipelinefile import load_pipeline_file, parse_param


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    return path


def test_a_full_file_is_read() -> None:
    text = """
[pipeline]
name = "demo"
targets = ["report"]
executor = "thread"
workers = 2
contracts = "warn"

[artifacts]
raw_dir = "data/raw"

[params.clean]
window = 20

[contracts]
clean = "off"

[executor_options]
address = "auto"
"""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        pf = load_pipeline_file(write(Path(d), text))
        folder = Path(d).resolve()
    assert (pf.name, pf.targets, pf.executor, pf.workers, pf.contracts) == ("demo", ("report",), "thread", 2, "warn")
    assert pf.artifacts == {"raw_dir": str(folder / "data" / "raw")} and pf.params == {"clean": {"window": 20}}
    assert pf.stage_contracts == {"clean": "off"} and pf.executor_options == {"address": "auto"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[pipline]\n", "key 'pipline': unknown top-level key"),
        ("[pipeline]\nexecuter = 'thread'\n", "key 'pipeline.executer': unknown key"),
        ("[pipeline]\nworkers = 'two'\n", "key 'pipeline.workers': must be an integer, not str"),
        ("[pipeline]\nworkers = 0\n", "key 'pipeline.workers': must be at least 1"),
        ("[pipeline]\nstages = 'a'\n", "key 'pipeline.stages': must be a list"),
        ("[pipeline]\nstages = [1]\n", "must be a list of strings"),
        ("[pipeline]\ncontracts = 'loud'\n", "key 'pipeline.contracts': must be one of"),
        ("[params]\nclean = 3\n", "key 'params.clean': must be a table"),
        ("[contracts]\nclean = 'maybe'\n", "key 'contracts.clean'"),
        ("pipeline = 3\n", "key 'pipeline': must be a table"),
        ("[pipeline\n", "invalid TOML"),
    ],
)
def test_bad_files_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PipelineFileError, match=message) as err:
        load_pipeline_file(path)
    assert str(path) in str(err.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PipelineFileError, match="does not exist"):
        load_pipeline_file(tmp_path / "nope.toml")


def test_relative_paths_resolve_against_the_file_not_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "other" / "dir"
    (project / "workspace").mkdir(parents=True)
    path = project / "pipeline.toml"
    path.write_text('[artifacts]\nworkspace = "workspace"\nraw = "data/raw.csv"\nsymbol = "AAPL"\n'
                    'top = 3\nabsolute = "/srv/x"\n\n[report]\npath = "out/report.html"\n')
    monkeypatch.chdir(tmp_path)
    pf = load_pipeline_file("other/dir/pipeline.toml")
    folder = project.resolve()
    assert pf.artifacts == {"workspace": str(folder / "workspace"), "raw": str(folder / "data" / "raw.csv"),
                            "symbol": "AAPL", "top": 3, "absolute": "/srv/x"}  # a plain word stays a string
    assert pf.report_path == str(project / "out" / "report.html")


@pytest.mark.parametrize("text", ["clean.window=[1,", "clean.window={a=", 'clean.window="open'])
def test_a_param_that_is_broken_toml_is_an_error_not_a_string(text: str) -> None:
    with pytest.raises(PipelineFileError, match="is not a valid TOML value"):
        parse_param(text)


def test_a_param_value_is_toml_and_a_bare_word_a_string() -> None:
    assert parse_param("clean.window=20") == ("clean", "window", 20)
    assert parse_param("my.stage.flag=true") == ("my.stage", "flag", True)
    assert parse_param("clean.mode=fast") == ("clean", "mode", "fast")
