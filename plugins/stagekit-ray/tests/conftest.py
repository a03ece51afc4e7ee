"""One local 2-CPU Ray cluster for the whole test session, started by the plugin's own cluster code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = str(Path(__file__).parent)
if HERE not in sys.path:  # ray_stages (stage functions workers import by name) lives here
    sys.path.insert(0, HERE)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """The session's cluster: executors in this process use it (and leave it running) instead of their own."""
    pytest.importorskip("ray")
    import ray
    from ray.data import DataContext
    from stagekit_ray.cluster import open_session

    session = open_session(num_cpus=2, object_store_memory=300 * 2**20)
    DataContext.get_current().enable_progress_bars = False
    try:
        yield session
    finally:
        session.close()
        assert not ray.is_initialized()
