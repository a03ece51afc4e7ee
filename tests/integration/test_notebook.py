"""Stages defined in a Jupyter notebook run under the process executor, in a real kernel.

The test builds a venv of its own (the kernel needs ipykernel, which the test environment does not have):
``python -m venv``, the running environment's third-party packages linked in as a dependency farm (see
freshenv.py: pandas, pyarrow and the rest are not downloaded again), stagekit installed from a copy of the
repo, and ``nbclient``, ``ipykernel`` and ``nbformat`` installed by pip from the index. It then executes a
notebook with nbclient, whose cells define ``@stage`` functions, a lambda, a closure and a class, and run them
under thread and process; the cells' outputs must match.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import freshenv
import pytest

pytestmark = pytest.mark.slow

CELLS = [
    "import dataclasses\nimport logging\n\nfrom stagekit import Pipeline, stage\n\nlog = logging.getLogger('nb')",
    "@dataclasses.dataclass\nclass Point:\n    x: int\n\n\n"
    "@stage(provides=['p'])\ndef load():\n    log.warning('loading in the notebook')\n    return Point(1)\n\n\n"
    "def shifter(n):\n    def shift(p):\n        return Point(p.x + n)\n    return shift\n\n\n"
    "shift = stage(shifter(40), name='shift', requires=['p'], provides=['q'])\n"
    "double = stage(lambda q: Point(q.x * 2), name='double', requires=['q'], provides=['r'])",
    "def run(executor):\n"
    "    result = Pipeline([load, shift, double]).run(executor=executor, workers=2)\n"
    "    r = result.artifacts['r']\n"
    "    return r.x, isinstance(r, Point), [e.message for e in result.stages['load'].logs]\n\n\n"
    "print(load.func.__module__, shift.func.__qualname__)\n"  # what no worker can import by name
    "print('thread', *run('thread'))\nprint('process', *run('process'))",
]

RUNNER = """
import json, sys
import nbformat
from nbclient import NotebookClient

cells = json.loads(sys.argv[1])
nb = nbformat.v4.new_notebook()
nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
NotebookClient(nb, timeout=180, kernel_name="python3").execute()
out = []
for cell in nb.cells:
    for o in cell.outputs:
        out.append({"type": o.output_type, "name": o.get("name"), "text": o.get("text", ""),
                    "error": o.get("ename")})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def kernel_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("notebook-venv")
    env = freshenv.FreshEnv(root, freshenv._build_flags([freshenv.REPO / "pyproject.toml"]))
    no_pip = ["--without-pip"] if freshenv.importlib.util.find_spec("pip") is not None else []
    freshenv._check(freshenv._run([sys.executable, "-m", "venv", *no_pip, env.venv], os.environ))
    freshenv.build_farm(root / "farm")
    (env.site_packages / "_stagekit_itest_farm.pth").write_text(f"{root / 'farm'}\n", encoding="utf-8")
    env.install(freshenv._copy_core(env.sources / "stagekit"))
    env.pip("install", "nbclient", "ipykernel", "nbformat")  # from the index: the test env has none of them
    return env.python


def test_notebook_stages_run_under_the_process_executor(kernel_python: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "STAGEKIT_", "VIRTUAL_ENV"))}
    env.update(JUPYTER_PLATFORM_DIRS="1", JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), IPYTHONDIR=str(tmp_path / "ipython"), HOME=str(tmp_path))
    proc = subprocess.run([str(kernel_python), "-c", RUNNER, json.dumps(CELLS)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    outputs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [o["error"] for o in outputs if o["type"] == "error"] == []
    printed = "".join(o["text"] for o in outputs if o["name"] == "stdout")
    assert printed.splitlines() == ["__main__ shifter.<locals>.shift",
                                    "thread 82 True ['loading in the notebook']",
                                    "process 82 True ['loading in the notebook']"]
    shown = "".join(o["text"] for o in outputs if o["name"] == "stderr")
    assert "Traceback" not in shown and shown.count("loading in the notebook") == 2, shown
