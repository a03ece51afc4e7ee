"""`import stagekit` stays light: no pandas, pandera, pyarrow or ray."""

from __future__ import annotations

import subprocess
import sys


def test_import_stagekit_imports_no_heavy_library() -> None:
    code = ("import sys, stagekit; stagekit.Host(autoload=False, env={}); "
            "print(','.join(m for m in ('pandas', 'pandera', 'pyarrow', 'ray', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_a_pipeline_without_contracts_imports_no_heavy_library() -> None:
    code = ("import sys\nfrom stagekit import Pipeline, stage\n"
            "s = stage(lambda x: x + 1, name='inc', requires=['x'], provides=['y'])\n"
            "assert Pipeline([s]).run({'x': 1}).artifacts['y'] == 2\n"
            "print(','.join(m for m in ('pandas', 'pandera', 'pyarrow', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_the_version_is_the_installed_one() -> None:
    from importlib.metadata import version

    import stagekit

    assert stagekit.__version__ == version("stagekit")


def test_stage_is_the_decorator_even_after_its_module_is_imported() -> None:
    code = ("import stagekit.stage, stagekit.run.runner\nfrom stagekit import stage\n"
            "print(callable(stage), type(stage).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True function"
