"""`stagekit new-plugin NAME`: the package it writes installs, its tests pass, and its stage is listed."""

from __future__ import annotations

from pathlib import Path

import pytest
from freshenv import FreshEnv

pytestmark = pytest.mark.xdist_group("install")


def test_a_new_plugin_installs_passes_its_tests_and_is_listed(fresh: FreshEnv, tmp_path: Path) -> None:
    made = fresh.stagekit("new-plugin", "weather", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    package = tmp_path / "stagekit-weather"
    assert (package / "pyproject.toml").exists()
    fresh.install("-e", package)
    try:
        tests = fresh.python_c(f"import pytest, sys; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', "
                               f"{str(package / 'tests')!r}]))")
        assert "3 passed" in tests
        stages = {s["name"]: s for s in fresh.stagekit_json("stages")}
        assert stages["weather.compute_returns"]["distribution"] == "stagekit-weather"
        again = fresh.stagekit("new-plugin", "weather", cwd=tmp_path)
        assert again.returncode == 2 and "already exists" in again.stderr
    finally:
        fresh.uninstall("stagekit-weather")
