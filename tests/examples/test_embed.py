from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from stagekit import Host

APP = Path(__file__).parents[2] / "examples" / "embed" / "app.py"


def load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("weather_app", APP)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_app_runs_as_a_user_would() -> None:
    out = subprocess.run([sys.executable, str(APP)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "mean=12.50 spread=3.00"


def test_two_hosts_in_one_process_do_not_leak_into_each_other() -> None:
    app = load_app()
    app_host = app.make_host()
    default_host = Host()  # the stagekit group, with whatever stagekit plugins are installed
    assert {"clean", "mean", "spread"} <= set(app_host.registry.stages)
    assert not {"clean", "mean", "spread"} & set(default_host.registry.stages)
    # plugins installed for stagekit are not even seen by the app's group
    stagekit_plugins = {r.name for r in default_host.records if r.distribution != "stagekit"}
    assert not stagekit_plugins & {r.name for r in app_host.records}
    assert app_host.manager is not default_host.manager
    app_host.manager.register(object(), name="extra")
    assert default_host.manager.get_plugin("extra") is None
