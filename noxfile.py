"""Sessions: tests, lint, typecheck, demo, ray (all run by default, as CI does), and benchmarks.

Every session installs what it needs into its own virtualenv, so `nox` on a fresh machine with only
Python and pip proves the whole project.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "demo", "ray"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PLUGINS = sorted(str(p) for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
LOCAL_PLUGINS = [p for p in PLUGINS if not p.endswith("stagekit-ray")]
PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite (core and every plugin package), Ray tests excepted (see 'ray')."""
    session.install("-e", ".[test]", *LOCAL_PLUGINS, "setuptools", "wheel")
    session.run("pytest", "-m", "not ray", "-n", "2", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "plugins", "benchmarks", "examples", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]", *LOCAL_PLUGINS)
    session.run("mypy", "src/stagekit", *(f"{p}/src" for p in LOCAL_PLUGINS))


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The demo pipeline end to end, on a reduced data size."""
    session.install(".", *LOCAL_PLUGINS)
    session.chdir("examples/momentum")
    session.run("stagekit", "check", "pipeline.toml")
    small = ["--param", "generate_raw_prices.symbols=60", "--param", "generate_raw_prices.years=6"]
    session.run("stagekit", "run", "pipeline.toml", *small)
    session.run("stagekit", "explain", "pipeline.toml", *small, "--param", "finalize_selection.top_n=10")
    session.run("stagekit", "run", "pipeline.toml", *small)  # again: reused from the run store
    session.run("stagekit", "runs", "show", "latest")


@nox.session(python=PYTHON)
def ray(session: nox.Session) -> None:
    """The Ray backend's tests, on a local 2-CPU cluster started once."""
    ray_plugin = [p for p in PLUGINS if p.endswith("stagekit-ray")]
    if not ray_plugin:
        session.skip("plugins/stagekit-ray is not there yet")
    session.install("-e", ".[test]", *PLUGINS, "setuptools", "wheel", "mypy", "pandas-stubs")
    session.run("mypy", *(f"{p}/src" for p in ray_plugin))
    session.run("pytest", "-m", "ray", *ray_plugin, "tests", *session.posargs)


@nox.session(python=PYTHON)
def benchmarks(session: nox.Session) -> None:
    """Every benchmark, printing its figures (not part of CI: the machines are noisy)."""
    session.install(".", *PLUGINS)
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        session.run("python", str(script))
