"""The plugin's registration: entry point, hooks, declarations, and that registering imports no pandas."""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import entry_points
from typing import Any

import stagekit_backtest.plugin as plugin
from stagekit_backtest import BacktestContext, merge_backtest

from stagekit.stage import Stage
from stagekit.testing import check_plugin_conformance, registrations


def registered() -> tuple[list[Stage], list[tuple[type | str, Any]]]:
    registry = registrations(plugin, "backtest")
    return list(registry.stages.values()), [(t, f) for t, f, _ in registry.merges]


def test_entry_point_names_the_plugin_module() -> None:
    (ep,) = [ep for ep in entry_points(group="stagekit") if ep.name == "backtest"]
    assert ep.value == "stagekit_backtest.plugin"
    assert ep.load() is plugin


def test_distribution_conforms() -> None:
    assert check_plugin_conformance("stagekit-backtest") == []


def test_hooks_register_the_stages_and_the_merge() -> None:
    stages, merges = registered()
    assert merges == [(BacktestContext, merge_backtest)]
    declared = {s.name: (s.requires, s.provides) for s in stages}
    assert declared == {
        "target_weights": (("returns", "portfolio"), ("weights",)),
        "run_backtest": (("returns", "weights"), ("backtest",)),
        "return_metrics": (("backtest",), ("backtest",)),
        "drawdown_metrics": (("backtest",), ("backtest",)),
        "turnover_metrics": (("backtest",), ("backtest",)),
        "summarize_backtest": (("backtest",), ("equity_curve", "metrics")),
    }
    for s in stages:
        touches = "backtest" in s.requires or "backtest" in s.provides
        assert s.types == ({"backtest": BacktestContext} if touches else {}), s.name
        assert isinstance(s.func, str), f"{s.name} must be registered lazily"


def test_declared_params_match_the_functions_defaults() -> None:
    stages, _ = registered()
    for s in stages:
        sig = inspect.signature(s.callable)
        defaults = {n: p.default for n, p in sig.parameters.items() if p.default is not p.empty}
        assert dict(s.params) == defaults, s.name
        assert set(sig.parameters) == set(s.requires) | set(s.params), s.name


def test_registering_imports_no_pandas() -> None:
    code = (
        "import sys, pluggy, stagekit.hookspecs as h, stagekit_backtest.plugin as p\n"
        "pm = pluggy.PluginManager(h.PROJECT); pm.add_hookspecs(h); pm.register(p)\n"
        "out = []\n"
        "pm.hook.stagekit_register_stages(register=out.append)\n"
        "pm.hook.stagekit_register_merges(register=lambda t, f: out.append(t))\n"
        "assert len(out) == 7, out\n"
        "heavy = sorted(m for m in ('pandas', 'numpy', 'pyarrow', 'pandera') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
