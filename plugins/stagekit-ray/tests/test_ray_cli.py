"""The pipeline-file and CLI path, the cluster life cycle (also of a run in code), and what the plugin never
does (import Ray early, write outside the temporary directory, leave a cluster running)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest

from stagekit.testing import check_plugin_conformance

pytestmark = pytest.mark.ray

DEMO_PLUGIN = '''
import os
import time
from pathlib import Path

from stagekit import hookimpl, stage


@stage(requires=["n"], provides=["squares"])
def squares(n):
    return [i * i for i in range(n)]


@stage(requires=["squares", "out"], provides=["written"])
def write(squares, out):
    Path(out).write_text(f"{sum(squares)} {os.getpid()}")
    return out


@stage(requires=["squares", "out"], provides=["never"])
def block(squares, out):
    Path(out).write_text("started")
    time.sleep(300)


@hookimpl
def stagekit_register_stages(register):
    register(squares)
    register(write)
    register(block)
'''


def demo_plugin(root: Path) -> Path:
    """A stage plugin 'skrdemo' that entry-point discovery finds on PYTHONPATH, as if pip-installed."""
    code = root / "code"
    code.mkdir()
    (code / "skrdemo.py").write_text(DEMO_PLUGIN)
    info = code / "skrdemo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: skrdemo\nVersion: 0.1\n"
                                   "Requires-Dist: stagekit>=0.1,<0.2\n")
    (info / "entry_points.txt").write_text("[stagekit]\nskrdemo = skrdemo\n")
    return code


def pipeline_file(root: Path, options: str = "", stages: str = '"squares", "write"') -> Path:
    path = root / "pipeline.toml"
    path.write_text(textwrap.dedent(f"""
        [pipeline]
        name = "demo"
        stages = [{stages}]
        [artifacts]
        n = 10
        out = "{root / 'out.txt'}"
        [executor_options]
        {options}
    """))
    return path


CLI = [sys.executable, "-c", "import sys; from stagekit.cli import main; sys.exit(main())"]


def stagekit(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=300)


def clean_env(code: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "STAGEKIT_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def test_stagekit_run_executor_ray_connects_to_a_running_cluster(ray_cluster: Any, tmp_path: Path) -> None:
    code = demo_plugin(tmp_path)
    # the cluster's workers do not have the plugin's code: ship it with the run's runtime_env
    options = f'address = "{ray_cluster.address}"\nruntime_env = {{ working_dir = "{code}" }}'
    env = clean_env(code, **{k: v for k, v in os.environ.items() if k.startswith("RAY_AUTH")})
    done = stagekit(["run", str(pipeline_file(tmp_path, options)), "--executor", "ray", "--json"], env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] and summary["executor"] == "ray"
    assert [s["status"] for s in summary["stages"]] == ["ok", "ok"]
    total, pid = (tmp_path / "out.txt").read_text().split()
    assert total == str(sum(i * i for i in range(10))) and int(pid) != os.getpid()


def test_without_an_address_it_starts_a_local_cluster_and_leaves_nothing_behind(tmp_path: Path) -> None:
    code = demo_plugin(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    with tempfile.TemporaryDirectory(prefix="skt") as tmp:  # short: Ray's socket paths live under it
        env = clean_env(code, HOME=str(home), TMPDIR=tmp)
        done = stagekit(["run", str(pipeline_file(tmp_path)), "--executor", "ray", "--workers", "1"], env)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "out.txt").read_text().split()[0] == "285"
        assert list(home.iterdir()) == []  # no ~/.ray/auth_token, nothing else in the home directory
        assert os.listdir(tmp) == []  # the cluster's temporary directory is gone too
        assert processes_mentioning(tmp) == []  # and so is every process of the cluster


def test_ctrl_c_stops_the_run_promptly_and_the_cluster_with_it(tmp_path: Path) -> None:
    code = demo_plugin(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    with tempfile.TemporaryDirectory(prefix="skt") as tmp:
        env = clean_env(code, HOME=str(home), TMPDIR=tmp)
        path = pipeline_file(tmp_path, stages='"squares", "block"')
        process = subprocess.Popen([*CLI, "run", str(path), "--executor", "ray"], env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        marker = tmp_path / "out.txt"
        deadline = time.monotonic() + 180
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), process.communicate(timeout=60)
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        assert time.monotonic() - interrupted < 30
        assert processes_mentioning(tmp) == []
        assert list(home.iterdir()) == [] and os.listdir(tmp) == []


IN_CODE = """
import ray, ray_stages as rs, stagekit_ray.plugin
from stagekit import Host, Pipeline

stages = [rs.make_prices, rs.base_stats, rs.add_mean, rs.add_max, rs.report]
pipeline = Pipeline(stages, host=Host(plugins=[stagekit_ray.plugin], autoload=False, env={}))
for fetch in (True, False):
    result = pipeline.run({"n": 5}, executor="ray", workers=1, executor_options={"fetch_outputs": fetch})
    assert not ray.is_initialized(), "the run's own cluster is still up"
    refs = [isinstance(v, ray.ObjectRef) for outs in result.outputs.values() for v in outs.values()]
    assert refs == [not fetch] * 5, refs
    assert result.artifacts["stats"] == {"rows": 5, "mean_a": 2.0, "max_b": 8.0}
    if fetch:
        assert len(result.outputs["make_prices"]["prices"]) == 5
        assert result.outputs["add_max"]["stats"]["max_b"] == 8.0
print("DONE")
"""


def test_a_run_in_code_with_its_own_cluster_fetches_the_outputs_then_stops_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with tempfile.TemporaryDirectory(prefix="skt") as tmp:
        env = clean_env(Path(__file__).parent, HOME=str(home), TMPDIR=tmp)  # ray_stages is found there
        done = subprocess.run([sys.executable, "-c", IN_CODE], capture_output=True, text=True, env=env,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        assert "DONE" in done.stdout
        assert processes_mentioning(tmp) == [] and os.listdir(tmp) == []
        assert list(home.iterdir()) == []


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline[:200]}")
    return found


def test_loading_the_plugin_and_running_without_ray_imports_no_ray(tmp_path: Path) -> None:
    try:
        distribution("stagekit-ray")
    except PackageNotFoundError:
        pytest.skip("stagekit-ray is not installed (pip install -e plugins/stagekit-ray)")
    code = demo_plugin(tmp_path)
    script = textwrap.dedent(f"""
        import sys
        from stagekit.cli import main
        assert main(["plugins"]) == 0 and main(["stages"]) == 0
        assert main(["run", {str(pipeline_file(tmp_path))!r}, "--executor", "sequential"]) == 0
        assert "stagekit_ray.plugin" in sys.modules, "the ray plugin was not loaded"
        print("RAY_IMPORTED", "ray" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=clean_env(code),
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "RAY_IMPORTED False" in done.stdout
    assert "ray" in done.stdout  # `stagekit plugins` listed it


def test_the_installed_distribution_conforms() -> None:
    try:
        distribution("stagekit-ray")
    except PackageNotFoundError:
        pytest.skip("stagekit-ray is not installed (pip install -e plugins/stagekit-ray)")
    assert check_plugin_conformance("stagekit-ray") == []
