"""Shared test setup: importable sample stages (for worker processes) and a hypothesis profile."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Worker processes import stage functions by module name: make tests/ importable in them too.
TESTS = str(Path(__file__).parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


EXECUTORS = ("sequential", "thread", "process")


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> str:
    """Each built-in executor by name: a test taking it runs once under each, and must give the same result."""
    name: str = request.param
    return name


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An initialised, empty workspace at ``tmp_path/ws`` (STAGEKIT_WORKSPACE unset). Modules that need files in
    it override this fixture and request it by the same name."""
    from stagekit import Workspace

    monkeypatch.delenv("STAGEKIT_WORKSPACE", raising=False)
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace(root).init()
