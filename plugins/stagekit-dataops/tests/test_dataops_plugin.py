"""The plugin: its entry point, lazy registration, contracts that agree along every edge, import cost."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import stagekit_dataops.plugin as plugin

from stagekit.contracts.checker import resolve_schema, static_problems
from stagekit.stage import Stage
from stagekit.testing import isolated_host, registrations

EXPECTED = {
    "read_raw_prices": (("raw_dir",), ("raw_prices",)),
    "clean_prices": (("raw_prices",), ("prices",)),
    "align_calendar": (("prices",), ("aligned_prices",)),
    "compute_features": (("aligned_prices",), ("features",)),
    "build_returns_matrix": (("features",), ("returns", "volume")),
    "validate_ingestion": (("raw_prices", "prices", "aligned_prices", "features", "returns", "volume"),
                           ("ingestion_report",)),
    "generate_raw_prices": (("workspace",), ("raw_dir",)),  # the demo's data source
    "load_returns_matrix": (("prices_dataset",), ("returns",)),  # the bulk source of returns
}


def registered() -> list[Stage]:
    return list(registrations(plugin, "dataops").stages.values())


def test_entry_point_names_the_plugin_module() -> None:
    (ep,) = [ep for ep in entry_points(group="stagekit") if ep.name == "dataops"]
    assert ep.value == "stagekit_dataops.plugin"
    assert ep.load() is plugin


def test_distribution_conforms() -> None:
    from stagekit.testing import check_plugin_conformance

    assert check_plugin_conformance("stagekit-dataops") == []


def test_registration_is_lazy_and_declares_every_contract() -> None:
    stages = registered()
    assert {s.name: (s.requires, s.provides) for s in stages} == EXPECTED
    for s in stages:
        if s.name == "generate_raw_prices":  # the demo's data source: a path, no frame to hold to a contract
            assert s.func == "stagekit_dataops.synthetic:generate_raw_prices" and not (s.inputs or s.outputs)
            continue
        if s.name == "load_returns_matrix":  # reads a path, so only its output has a contract
            assert s.func == "stagekit_dataops.bulk:load_returns_matrix" and not s.inputs
            assert s.outputs == {"returns": plugin.CONTRACTS["returns"]}
            continue
        assert isinstance(s.func, str) and s.func == f"stagekit_dataops.stages:{s.name}"
        assert "dataops" in s.tags
        declared = {**s.inputs, **s.outputs}
        assert set(declared) == (set(s.requires) | set(s.provides)) - {"raw_dir"}, s.name
        assert all(isinstance(ref, str) for ref in declared.values()), "schemas are named lazily"
        assert callable(s.callable)


def test_contracts_agree_along_every_edge() -> None:
    stages = {s.name: s for s in plugin.dataops_stages()}
    edges = [(p, c, a) for p in stages.values() for c in stages.values()
             for a in p.provides if a in c.requires]
    assert len(edges) == 10
    compare = isolated_host()
    assert static_problems(edges, compare.hook.stagekit_check_compatible) == []
    for ref in plugin.CONTRACTS.values():
        assert type(resolve_schema(ref)).__module__.startswith("pandera.")


def test_registering_imports_nothing_heavy() -> None:
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "import stagekit_dataops.plugin as p\n"
        "stages = p.dataops_stages()\n"
        "print(round((time.perf_counter() - t) * 1000))\n"
        "heavy = ('pandas', 'pandera', 'pyarrow', 'numpy')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    _elapsed_ms, modules = out.stdout.splitlines()
    assert modules == "[]"
