from __future__ import annotations

from pathlib import Path

import pytest

from stagekit import PipelineFileError
from stagekit.cli.pipelinefile import load_pipeline_file


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
    assert (pf.name, pf.targets, pf.executor, pf.workers, pf.contracts) == ("demo", ("report",), "thread", 2, "warn")
    assert pf.artifacts == {"raw_dir": "data/raw"} and pf.params == {"clean": {"window": 20}}
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
