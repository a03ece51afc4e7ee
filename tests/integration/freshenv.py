"""A fresh virtualenv per test session, with stagekit and fixture plugins installed for real by pip.

Every test here drives the fresh venv's own ``stagekit`` console script in a subprocess and reads its output
as a user would. How the session stays honest and fast:

* ``python -m venv --without-pip`` (0.1 s; ensurepip would cost ~10 s): pip comes from the farm below.
* The heavy third-party dependencies (pandas, pyarrow, pandera, pluggy, attrs, importlib-metadata,
  packaging, and pip/setuptools themselves) are not downloaded again. The session builds a *dependency
  farm*: a directory of symlinks to the top-level entries of the running interpreter's site-packages,
  leaving out stagekit itself, every distribution that has entry points in the group ``stagekit`` or
  requires stagekit (the bundled plugins installed in the running env), and every ``*.pth`` file (the
  running env's editable installs are .pth files and finder modules, so none of them leaks in). One ``.pth``
  in the fresh venv's site-packages appends the farm to ``sys.path``, after the venv's own site-packages.
  A symlink farm takes ~0.1 s, copies nothing and cannot diverge from what the running env tested.
* Everything stagekit is then installed into the venv by the venv's own ``python -m pip`` (pip comes from
  the farm) with ``--no-index``: no network, and pip's resolver must find every declared dependency already
  installed, so the packages' dependency declarations are checked too. Builds use ``--no-build-isolation``
  when the running env's setuptools satisfies every package's ``[build-system] requires`` (then the farm's
  setuptools is the backend), which saves a setuptools download per build; otherwise they fall back to
  pip's isolated builds (and the network).
* Sources are copied into the session's tmp dir before building, so builds never write into the repo.
* Base state, built once: the core (a regular install from the repo), ``stagekit-itest-alpha`` (regular)
  and ``stagekit-itest-beta`` (editable). Plugins that would disturb the other tests (an import that raises,
  a ``stagekit>=99`` requirement, a misspelt hook, a stage-name clash, a second distribution reusing the
  entry-point name ``alpha``, one distribution installed twice) are installed with
  ``pip install --target DIR`` into a directory each, and a test puts the directories it wants on
  ``sys.path`` through ``PYTHONPATH``: installed distributions like any other, found through the same
  entry points, but only where a test asks for them. Tests that install or uninstall undo it.
* One venv per pytest process (~12 s on 2 busy cores). The test modules are marked
  ``xdist_group("install")`` so that ``--dist loadgroup`` keeps them on one worker; where the group is
  ignored (pytest 9.2 with pytest-xdist 3.8: pytest-dev/pytest-xdist#1386) each worker builds its own venv,
  which costs time but stays correct, since tests change the venv and never share it across processes.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PACKAGES = Path(__file__).resolve().parent / "packages"
BIN = "Scripts" if os.name == "nt" else "bin"
# Installed with ``--target`` into a directory each; gamma twice, for the "found twice on sys.path" test.
TARGETS = {"broken": "broken", "future": "future", "misspelt": "misspelt", "clash": "clash",
           "alias": "alias", "gamma_a": "gamma", "gamma_b": "gamma", "basket": "basket", "meteo": "meteo",
           "ledger": "ledger"}


class CommandFailed(AssertionError):
    pass


def _run(cmd: Sequence[str | Path], env: Mapping[str, str], cwd: Path | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], env=dict(env), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _check(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(map(str, proc.args))} exited {proc.returncode}\n"
                            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


class FreshEnv:
    """The session's venv, and how to run its ``stagekit`` and ``pip`` as a user would."""

    def __init__(self, root: Path, build_flags: tuple[str, ...]) -> None:
        self.root = root
        self.venv = root / "venv"
        self.sources = root / "src"
        self.build_flags = build_flags
        self.targets: dict[str, Path] = {}
        self._copies = itertools.count(1)  # next() is atomic: the session fixture copies from threads

    @property
    def bin(self) -> Path:
        return self.venv / BIN

    @property
    def python(self) -> Path:
        return self.bin / ("python.exe" if os.name == "nt" else "python")

    @functools.cached_property
    def site_packages(self) -> Path:
        out = _check(_run([self.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          self.env()))
        return Path(out.stdout.strip())

    def env(self, plugins: Sequence[str] = (), **extra: str) -> dict[str, str]:
        """A clean environment: the venv first on PATH; none of the running env's Python or stagekit
        settings; ``plugins`` names the ``--target`` directories to put on sys.path."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTHON", "STAGEKIT_", "SKT_", "VIRTUAL_ENV", "CONDA_", "__PYVENV"))}
        env.update(PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(self.venv),
                   PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        if plugins:
            env["PYTHONPATH"] = os.pathsep.join(str(self.targets[p]) for p in plugins)
        env.update(extra)
        return env

    def stagekit(self, *args: str, plugins: Sequence[str] = (), cwd: Path | None = None,
                 env: Mapping[str, str] | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
        """Run the venv's ``stagekit`` console script (whatever its exit code); ``env`` and ``extra`` add
        environment variables."""
        return _run([self.bin / "stagekit", *args], self.env(plugins, **(env or {}), **extra), cwd=cwd,
                    timeout=120)

    def stagekit_json(self, *args: str, plugins: Sequence[str] = (), cwd: Path | None = None,
                      env: Mapping[str, str] | None = None, **extra: str) -> Any:
        """Run ``stagekit ... --json``, which must succeed, and parse what it printed."""
        proc = _check(self.stagekit(*args, "--json", plugins=plugins, cwd=cwd, env=env, **extra))
        return json.loads(proc.stdout)

    def python_c(self, code: str, plugins: Sequence[str] = ()) -> str:
        return _check(_run([self.python, "-c", code], self.env(plugins))).stdout

    def run_python(self, code: str, plugins: Sequence[str] = (),
                   cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``code`` with the venv's interpreter in ``cwd`` (whatever its exit code)."""
        return _run([self.python, "-c", code], self.env(plugins), cwd=cwd)

    def pip(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return _check(_run([self.python, "-m", "pip", *args], self.env()))

    def source(self, package: str) -> Path:
        """A fresh copy of a fixture package to build from (builds write build/ and *.egg-info)."""
        dest = self.sources / f"{package}-{next(self._copies)}"
        shutil.copytree(PACKAGES / package, dest, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                                "__pycache__"))
        return dest

    def install(self, *specs: str | Path, target: Path | None = None, no_deps: bool = False) -> None:
        """``pip install`` into the venv (or ``--target``); ``specs`` may include ``"-e"`` before a path."""
        where = ["--target", str(target)] if target is not None else []
        self.pip("install", *self.build_flags, *where, *(["--no-deps"] if no_deps else []), *specs)

    def uninstall(self, *distributions: str) -> None:
        self.pip("uninstall", "--yes", *distributions)


def _site_packages_of_running_env() -> list[Path]:
    return [Path(p) for p in dict.fromkeys(sys.path)
            if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]


def _is_stagekit_related(dist: metadata.Distribution) -> bool:
    name = (dist.metadata["Name"] or "").lower().replace("_", "-")
    if name == "stagekit" or any(ep.group == "stagekit" for ep in dist.entry_points):
        return True
    return any(r.split(";")[0].strip().lower().startswith("stagekit") for r in dist.requires or ())


def _excluded_entries(site: Path) -> set[str]:
    """Top-level names in ``site`` that belong to stagekit or a stagekit plugin."""
    out: set[str] = set()
    for dist in metadata.distributions(path=[str(site)]):
        if not _is_stagekit_related(dist):
            continue
        path = getattr(dist, "_path", None)
        if path is not None:
            out.add(Path(path).name)
        for f in dist.files or ():
            top = f.parts[0] if f.parts else ""
            if top and not top.startswith(".."):
                out.add(top)
        for top in (dist.read_text("top_level.txt") or "").split():
            out.update({top, f"{top}.py"})
    return out


def build_farm(farm: Path) -> list[str]:
    """Symlink the running env's third-party top-level entries into ``farm``; return what was left out."""
    farm.mkdir(parents=True)
    left_out: list[str] = []
    for site in _site_packages_of_running_env():
        excluded = _excluded_entries(site)
        for entry in sorted(site.iterdir()):
            name = entry.name
            if name in excluded or name.endswith(".pth") or name.startswith("__editable__") \
                    or name == "__pycache__":
                left_out.append(name)
                continue
            if not (farm / name).exists():
                (farm / name).symlink_to(entry, target_is_directory=entry.is_dir())
    return left_out


def _build_flags(pyprojects: Sequence[Path]) -> tuple[str, ...]:
    """No isolation and no index when the running env's setuptools can build every package; else isolate."""
    from packaging.requirements import Requirement

    for pyproject in pyprojects:
        build_system = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("build-system", {})
        for line in build_system.get("requires", []):
            req = Requirement(line)
            try:
                have = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                return ()
            if not req.specifier.contains(have, prereleases=True):
                return ()
    return ("--no-index", "--no-build-isolation")


def _copy_core(dest: Path) -> Path:
    """The repo's top-level files and src/ (what the core's build needs), without build leftovers."""
    dest.mkdir(parents=True)
    for entry in REPO.iterdir():
        if entry.is_file():
            shutil.copy2(entry, dest / entry.name)
    shutil.copytree(REPO / "src", dest / "src",
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    return dest


def create(root: Path) -> FreshEnv:
    """The venv, the farm, the core with alpha (regular) and beta (editable), and the --target installs."""
    env = FreshEnv(root, _build_flags([REPO / "pyproject.toml", *sorted(PACKAGES.glob("*/pyproject.toml"))]))
    # pip comes from the farm when the running env has it (a uv-made env may not: then ensurepip, ~10 s)
    no_pip = ["--without-pip"] if importlib.util.find_spec("pip") is not None else []
    _check(_run([sys.executable, "-m", "venv", *no_pip, env.venv], os.environ))
    build_farm(root / "farm")
    (env.site_packages / "_stagekit_itest_farm.pth").write_text(f"{root / 'farm'}\n", encoding="utf-8")
    core = _copy_core(env.sources / "stagekit")

    def install_target(name: str) -> None:
        env.targets[name] = root / "targets" / name
        env.install(env.source(TARGETS[name]), target=env.targets[name], no_deps=True)

    with ThreadPoolExecutor(max_workers=2) as pool:  # the --target installs need nothing from the venv
        jobs = [pool.submit(install_target, name) for name in TARGETS]
        env.install(core, env.source("alpha"), "-e", env.source("beta"))
        for job in jobs:
            job.result()
    return env


def imported(log: Path) -> set[str]:
    return set(log.read_text(encoding="utf-8").split()) if log.exists() else set()


def by_name(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in records}
