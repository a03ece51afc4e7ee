"""``stagekit.__all__`` is the whole public API: every name in it resolves, every error is in it, and the
bundled plugins import nothing else of the core (what a third-party plugin can import, ours do too)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import stagekit
from stagekit import errors

ROOT = Path(__file__).parents[1]
SRC = ROOT / "src" / "stagekit"


def test_every_public_name_resolves() -> None:
    for name in stagekit.__all__:
        assert getattr(stagekit, name) is not None, name
    assert sorted(stagekit.__all__) == stagekit.__all__


def test_every_error_and_warning_is_public() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, BaseException) and c.__module__ == "stagekit.errors"]
    assert len(classes) >= 20
    assert [c.__name__ for c in classes if c.__name__ not in stagekit.__all__] == []


def _exception_classes_defined_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {ast.unparse(b) for b in node.bases}
            if any(b.endswith(("Error", "Exception", "Warning", "Interrupt")) for b in bases):
                found.append(f"{path.relative_to(ROOT)}:{node.name}")
    return found


def test_every_error_class_lives_in_errors_py() -> None:
    elsewhere = [c for p in SRC.rglob("*.py") if p.name != "errors.py" for c in _exception_classes_defined_in(p)]
    assert elsewhere == []


def test_bundled_plugins_import_only_public_names() -> None:
    private = []
    for path in ROOT.glob("plugins/*/src/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stagekit."):
                private.append(f"{path.relative_to(ROOT)}: from {node.module} import ...")
            if isinstance(node, ast.Import):
                private += [f"{path.relative_to(ROOT)}: import {a.name}" for a in node.names
                            if a.name.startswith("stagekit.")]
    assert private == []
