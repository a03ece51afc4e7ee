"""Fixtures for the integration tests: one fresh venv per session (how and why: see freshenv.py)."""

from __future__ import annotations

import time
from pathlib import Path

import freshenv
import pytest


@pytest.fixture(scope="session")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> freshenv.FreshEnv:
    start = time.perf_counter()
    env = freshenv.create(tmp_path_factory.mktemp("fresh-venv"))
    print(f"\nfresh venv, stagekit and the fixture plugins installed in {time.perf_counter() - start:.1f} s")
    return env


@pytest.fixture
def import_log(tmp_path: Path) -> Path:
    """Where the fixture plugins' modules record that they were imported (env SKT_IMPORT_LOG)."""
    return tmp_path / "imports.log"
