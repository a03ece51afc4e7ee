"""Plugin discovery through real entry points of packages installed by pip into a fresh venv.

Every command runs the venv's ``stagekit`` console script in a subprocess (see conftest.py for the venv).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from freshenv import REPO, FreshEnv, by_name, imported

pytestmark = pytest.mark.xdist_group("install")

BUILTINS = ["stagekit.executors", "stagekit.merges", "stagekit.contracts", "stagekit.codecs", "stagekit.formats"]
ALPHA_STAGES = ["alpha_numbers", "alpha_double", "alpha_explode"]
CORE_VERSION = re.search(r'__version__ = "(.+)"', (REPO / "src/stagekit/_version.py").read_text()).group(1)


def plugins(fresh: FreshEnv, *args: str, with_plugins: tuple[str, ...] = (),
            env: Mapping[str, str] | None = None, **extra: str) -> dict[str, dict[str, Any]]:
    """``stagekit ARGS plugins --json``, by plugin name."""
    return by_name(fresh.stagekit_json(*args, "plugins", plugins=with_plugins, env={**(env or {}), **extra}))


def stage_names(fresh: FreshEnv, *args: str, with_plugins: tuple[str, ...] = (),
                env: Mapping[str, str] | None = None, **extra: str) -> list[str]:
    """The names ``stagekit ARGS stages --json`` lists."""
    listed = fresh.stagekit_json(*args, "stages", plugins=with_plugins, env={**(env or {}), **extra})
    return [s["name"] for s in listed]


def assert_short_error(stderr: str, *fragments: str) -> None:
    """One or two lines, no traceback, and every fragment somewhere in them."""
    lines = stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in stderr, (fragment, stderr)


# --- the venv itself -------------------------------------------------------------------------------------


def test_the_core_is_a_regular_install_from_the_repo_and_nothing_leaks_in(fresh: FreshEnv) -> None:
    out = fresh.python_c(
        "import json, stagekit; from importlib.metadata import distribution as d\n"
        "def editable(name):\n"
        "    url = d(name).read_text('direct_url.json')\n"
        "    return bool(url and json.loads(url).get('dir_info', {}).get('editable'))\n"
        "names = ('stagekit', 'stagekit-itest-alpha', 'stagekit-itest-beta')\n"
        "print(json.dumps({'file': stagekit.__file__, 'version': stagekit.__version__,\n"
        "                  'editable': {n: editable(n) for n in names}}))"
    )
    info = json.loads(out)
    assert Path(info["file"]).is_relative_to(fresh.site_packages), "stagekit must be imported from the venv"
    assert info["editable"] == {"stagekit": False, "stagekit-itest-alpha": False, "stagekit-itest-beta": True}
    assert info["version"] == CORE_VERSION
    version = fresh.stagekit("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"stagekit {CORE_VERSION}")
    # only the builtins and what this session installed: none of the running env's plugins
    assert list(plugins(fresh)) == [*BUILTINS, "alpha", "beta"]


# --- discovery -------------------------------------------------------------------------------------------


def test_installed_plugins_are_found_through_their_entry_points(fresh: FreshEnv, import_log: Path) -> None:
    found = plugins(fresh, SKT_IMPORT_LOG=str(import_log))
    alpha, beta = found["alpha"], found["beta"]
    assert (alpha["distribution"], alpha["version"], alpha["status"], alpha["error"]) == (
        "stagekit-itest-alpha", "0.1.0", "loaded", None)
    assert alpha["entry_point"] == "skt_alpha.plugin"
    assert sorted(alpha["stages"]) == sorted(ALPHA_STAGES)
    assert (beta["distribution"], beta["version"], beta["status"]) == (
        "stagekit-itest-beta", "0.2.0", "loaded")
    assert sorted(beta["stages"]) == ["beta_report", "beta_total"]
    for name in BUILTINS:
        assert (found[name]["distribution"], found[name]["status"]) == ("stagekit", "loaded")

    stages = {s["name"]: s for s in fresh.stagekit_json("stages", SKT_IMPORT_LOG=str(import_log))}
    assert set(stages) == {*ALPHA_STAGES, "beta_total", "beta_report"}
    assert stages["alpha_double"] == {
        "name": "alpha_double", "plugin": "alpha", "distribution": "stagekit-itest-alpha",
        "requires": ["numbers"], "provides": ["doubled"], "tags": ["itest"],
        "description": "Each number doubled (imported when the stage first runs).",
    }
    assert stages["beta_report"]["distribution"] == "stagekit-itest-beta"
    # listing imported the plugin modules, but not the module behind the lazy "skt_alpha.work:double"
    assert imported(import_log) == {"skt_alpha.plugin", "skt_beta.plugin"}


def test_the_plugins_table_is_readable(fresh: FreshEnv) -> None:
    proc = fresh.stagekit("plugins", plugins=["broken"])
    assert proc.returncode == 0, proc.stderr
    header, rule, *rows = proc.stdout.splitlines()
    assert header.split() == ["plugin", "distribution", "version", "status", "registered", "note"]
    assert set(rule) <= {"-", " "}
    row = {line.split()[0]: line for line in rows}
    assert row["alpha"].split()[:6] == ["alpha", "stagekit-itest-alpha", "0.1.0", "loaded", "3", "stages"]
    assert row["broken"].split()[:4] == ["broken", "stagekit-itest-broken", "0.1.0", "failed"]
    assert "licence key is missing" in row["broken"]


def test_an_editable_plugin_sees_edits_to_its_source_without_reinstalling(fresh: FreshEnv) -> None:
    source = fresh.source("gamma")
    fresh.install("-e", source)
    try:
        assert "gamma_hello" in stage_names(fresh)
        module = source / "src" / "skt_gamma" / "plugin.py"
        module.write_text(module.read_text(encoding="utf-8").replace(
            "    register(gamma_hello)\n",
            "    register(gamma_hello)\n    register(gamma_hello.evolve(name='gamma_hello_again'))\n",
        ), encoding="utf-8")
        assert {"gamma_hello", "gamma_hello_again"} <= set(stage_names(fresh))
    finally:
        fresh.uninstall("stagekit-itest-gamma")
    assert not {"gamma_hello", "gamma_hello_again"} & set(stage_names(fresh))


def test_uninstalling_a_plugin_removes_its_stages(fresh: FreshEnv) -> None:
    fresh.install(fresh.source("gamma"))
    try:
        found = plugins(fresh)
        gamma = found["gamma"]
        assert (gamma["distribution"], gamma["version"]) == ("stagekit-itest-gamma", "1.0.0")
        assert "gamma_hello" in stage_names(fresh)
    finally:
        fresh.uninstall("stagekit-itest-gamma")
    assert "gamma" not in plugins(fresh)
    names = stage_names(fresh)
    assert "gamma_hello" not in names
    assert set(ALPHA_STAGES) <= set(names)


# --- isolation and strictness ------------------------------------------------------------------------------


def test_a_plugin_whose_import_raises_is_reported_and_the_others_load(fresh: FreshEnv,
                                                                       import_log: Path) -> None:
    found = plugins(fresh, with_plugins=("broken",), SKT_IMPORT_LOG=str(import_log))
    broken = found["broken"]
    assert (broken["status"], broken["distribution"], broken["version"], broken["stages"]) == (
        "failed", "stagekit-itest-broken", "0.1.0", [])
    assert broken["error"] == (
        "import failed: RuntimeError: skt_broken cannot start: the licence key is missing")
    assert {found[n]["status"] for n in ("alpha", "beta", *BUILTINS)} == {"loaded"}
    assert "skt_broken.plugin" in imported(import_log)
    assert set(stage_names(fresh, with_plugins=("broken",))) == {*ALPHA_STAGES, "beta_total", "beta_report"}


@pytest.mark.parametrize("how", ["env", "flag"])
def test_strict_plugins_makes_a_failing_plugin_fatal(fresh: FreshEnv, how: str) -> None:
    args, env = (("--strict-plugins",), {}) if how == "flag" else ((), {"STAGEKIT_STRICT_PLUGINS": "1"})
    proc = fresh.stagekit(*args, "stages", plugins=["broken"], env=env)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert_short_error(proc.stderr, "'broken'", "stagekit-itest-broken 0.1.0",
                       "RuntimeError: skt_broken cannot start: the licence key is missing")

    proc = fresh.stagekit(*args, "--traceback", "stages", plugins=["broken"], env=env)
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr
    assert 'raise RuntimeError("skt_broken cannot start' in proc.stderr  # the plugin's own frame
    assert proc.stderr.rstrip().splitlines()[-1].startswith("stagekit: error: plugin 'broken'")


def test_strict_mode_is_fine_when_every_plugin_loads(fresh: FreshEnv) -> None:
    assert set(ALPHA_STAGES) <= set(stage_names(fresh, "--strict-plugins"))


# --- allow and block lists ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "env"), [
    (("--disable", "alpha"), {}),
    (("--disable", "stagekit-itest-alpha"), {}),  # a distribution name works too
    ((), {"STAGEKIT_DISABLE": "alpha"}),
    ((), {"STAGEKIT_DISABLE": "stagekit_itest_alpha"}),  # in any spelling of the distribution name
])
def test_a_blocked_plugin_is_never_imported(fresh: FreshEnv, import_log: Path, args: tuple[str, ...],
                                            env: dict[str, str]) -> None:
    found = plugins(fresh, *args, env=env, SKT_IMPORT_LOG=str(import_log))
    assert (found["alpha"]["status"], found["alpha"]["stages"]) == ("blocked", [])
    assert found["beta"]["status"] == "loaded"
    assert imported(import_log) == {"skt_beta.plugin"}  # the log works, and alpha never ran
    names = stage_names(fresh, *args, env=env, SKT_IMPORT_LOG=str(import_log))
    assert set(names) == {"beta_total", "beta_report"}
    assert "skt_alpha.plugin" not in imported(import_log)


def test_blocking_a_broken_plugin_keeps_strict_mode_happy(fresh: FreshEnv, import_log: Path) -> None:
    args = ("--strict-plugins", "--disable", "broken,beta")  # a comma list in one flag
    found = plugins(fresh, *args, with_plugins=("broken",), SKT_IMPORT_LOG=str(import_log))
    assert (found["broken"]["status"], found["beta"]["status"], found["alpha"]["status"]) == (
        "blocked", "blocked", "loaded")
    assert imported(import_log) == {"skt_alpha.plugin"}


@pytest.mark.parametrize("allow", ["beta", "stagekit-itest-beta", "beta,broken"])
def test_an_allow_list_loads_only_the_plugins_it_names(fresh: FreshEnv, import_log: Path, allow: str) -> None:
    found = plugins(fresh, with_plugins=("broken",), SKT_IMPORT_LOG=str(import_log), STAGEKIT_PLUGINS=allow)
    assert found["beta"]["status"] == "loaded"
    assert found["alpha"]["status"] == "disabled"
    assert found["broken"]["status"] == ("failed" if "broken" in allow else "disabled")
    assert {found[n]["status"] for n in BUILTINS} == {"loaded"}  # the core's own plugins are not entry points
    assert "skt_alpha.plugin" not in imported(import_log)
    names = stage_names(fresh, with_plugins=("broken",), STAGEKIT_PLUGINS=allow)
    assert set(names) == {"beta_total", "beta_report"}


@pytest.mark.parametrize(("args", "env", "culprit", "hint"), [
    ((), {"STAGEKIT_PLUGINS": "beta,alpah"}, "'alpah'", "alpha"),
    ((), {"STAGEKIT_DISABLE": "nosuchplugin"}, "'nosuchplugin'", "STAGEKIT_DISABLE"),
    (("--disable", "bta"), {}, "'bta'", "beta"),
])
def test_an_unknown_name_in_a_control_list_is_an_error_naming_it(fresh: FreshEnv, import_log: Path,
                                                                 args: tuple[str, ...], env: dict[str, str],
                                                                 culprit: str, hint: str) -> None:
    proc = fresh.stagekit(*args, "stages", env=env, SKT_IMPORT_LOG=str(import_log))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert_short_error(proc.stderr, culprit, hint)
    assert imported(import_log) == set()  # checked before any plugin is imported


def test_autoload_can_be_switched_off(fresh: FreshEnv, import_log: Path) -> None:
    found = plugins(fresh, SKT_IMPORT_LOG=str(import_log), STAGEKIT_DISABLE_PLUGIN_AUTOLOAD="1")
    assert {found[n]["status"] for n in ("alpha", "beta")} == {"disabled"}
    assert {found[n]["status"] for n in BUILTINS} == {"loaded"}
    assert stage_names(fresh, STAGEKIT_DISABLE_PLUGIN_AUTOLOAD="1") == []
    assert imported(import_log) == set()


# --- checks after discovery ---------------------------------------------------------------------------------


def test_a_plugin_needing_another_stagekit_is_refused_unimported(fresh: FreshEnv, import_log: Path) -> None:
    found = plugins(fresh, with_plugins=("future",), SKT_IMPORT_LOG=str(import_log))
    future = found["future"]
    assert (future["status"], future["distribution"], future["version"]) == (
        "failed", "stagekit-itest-future", "3.0.0")
    assert future["error"] == f"requires stagekit>=99, but this is stagekit {CORE_VERSION}"
    assert found["alpha"]["status"] == "loaded"
    assert "skt_future.plugin" not in imported(import_log)
    assert "future_stage" not in stage_names(fresh, with_plugins=("future",))

    proc = fresh.stagekit("--strict-plugins", "stages", plugins=["future"])
    assert proc.returncode != 0
    assert_short_error(proc.stderr, "'future'", "requires stagekit>=99")


def test_a_misspelt_hook_name_is_an_error(fresh: FreshEnv) -> None:
    misspelt = plugins(fresh, with_plugins=("misspelt",))["misspelt"]
    assert misspelt["status"] == "failed"
    assert misspelt["error"] == ("unknown hook(s) 'stagekit_register_stage' "
                                 "(did you mean 'stagekit_register_stages'?)")
    assert "misspelt_stage" not in stage_names(fresh, with_plugins=("misspelt",))
    proc = fresh.stagekit("--strict-plugins", "plugins", plugins=["misspelt"])
    assert proc.returncode != 0
    assert_short_error(proc.stderr, "'misspelt'", "stagekit-itest-misspelt", "'stagekit_register_stage'")


def test_the_same_stage_name_from_two_distributions_is_an_error_naming_both(fresh: FreshEnv) -> None:
    proc = fresh.stagekit("stages", plugins=["clash"])
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert_short_error(proc.stderr, "'alpha_numbers'",
                       "plugin 'alpha' (distribution stagekit-itest-alpha 0.1.0)",
                       "plugin 'clash' (distribution stagekit-itest-clash 0.1.0)")
    # the advice in the message works: block one of them
    assert "alpha_numbers" in stage_names(fresh, "--disable", "clash", with_plugins=("clash",))


def test_the_same_distribution_twice_on_sys_path_is_reported(fresh: FreshEnv, import_log: Path) -> None:
    first, second = fresh.targets["gamma_a"], fresh.targets["gamma_b"]
    found = plugins(fresh, with_plugins=("gamma_a", "gamma_b"), SKT_IMPORT_LOG=str(import_log))
    gamma = found["gamma"]
    assert list(found).count("gamma") == 1
    assert (gamma["status"], gamma["distribution"], gamma["version"]) == (
        "loaded", "stagekit-itest-gamma", "1.0.0")
    assert gamma["shadowed"] == [str(second)]
    assert gamma["note"] == f"also installed at {second} (shadowed by {first})"
    names = stage_names(fresh, "--disable", "alpha,beta", with_plugins=("gamma_a", "gamma_b"))
    assert names == ["gamma_hello"]
    table = fresh.stagekit("plugins", plugins=["gamma_a", "gamma_b"]).stdout
    assert f"also installed at {second}" in table


def test_the_order_of_plugins_is_deterministic(fresh: FreshEnv) -> None:
    extra = ("misspelt", "gamma_a", "broken", "future")

    def listing(order: tuple[str, ...]) -> list[tuple[str, str | None]]:
        return [(r["name"], r["distribution"]) for r in fresh.stagekit_json("plugins", plugins=order)]

    forward = listing(extra)
    assert forward == listing(tuple(reversed(extra)))  # not the order on sys.path
    assert forward == listing(extra)  # nor anything else that changes between runs
    names = [name for name, _ in forward]
    n = len(BUILTINS)
    assert names[:n] == BUILTINS  # the core's own plugins first, then entry points by name
    assert names[n:] == sorted(names[n:]) == ["alpha", "beta", "broken", "future", "gamma", "misspelt"]


def test_two_distributions_with_the_same_entry_point_name_stay_accountable(fresh: FreshEnv) -> None:
    records = [r for r in fresh.stagekit_json("plugins", plugins=["alias"]) if r["name"] == "alpha"]
    assert sorted(r["distribution"] for r in records) == ["stagekit-itest-alias", "stagekit-itest-alpha"]
    stages = {s["name"]: s["distribution"] for s in fresh.stagekit_json("stages", plugins=["alias"])}
    assert any(r["status"] == "loaded" for r in records)
    for record in records:
        if record["status"] == "loaded":  # whatever loaded registered its stages, under its own distribution
            assert record["stages"], record
            assert {stages[s] for s in record["stages"]} == {record["distribution"]}
        else:  # whatever did not says why in one line, naming the other distribution
            assert record["status"] == "failed"
            other = ({"stagekit-itest-alias", "stagekit-itest-alpha"} - {record["distribution"]}).pop()
            assert "\n" not in record["error"] and other in record["error"], record["error"]


def test_building_an_editable_plugin_in_place_is_not_a_second_installation(fresh: FreshEnv,
                                                                           tmp_path: Path) -> None:
    source = fresh.source("gamma")
    fresh.install("-e", source)
    try:
        # what a plugin author does while developing: build a wheel in the source tree
        fresh.pip("wheel", "--no-deps", *fresh.build_flags, "--wheel-dir", tmp_path, source)
        assert list((source / "src").glob("*.egg-info")), "the in-tree build left metadata in src/"
        gamma = plugins(fresh)["gamma"]
        assert (gamma["status"], gamma["shadowed"], gamma["error"]) == ("loaded", [], None)
    finally:
        fresh.uninstall("stagekit-itest-gamma")
