"""``stagekit new-plugin NAME``: write an installable stage-plugin package whose tests pass at once."""

from __future__ import annotations

import re
from pathlib import Path

from stagekit.errors import ScaffoldError

_NAME = re.compile(r"^[a-z][a-z0-9]*([-_][a-z0-9]+)*$")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "A stagekit stage plugin"
requires-python = ">=3.11"
dependencies = ["stagekit>={major_minor},<{next_minor}", "pandas", "pandera"]

[project.optional-dependencies]
test = ["pytest"]

[project.entry-points.stagekit]
{entry} = "{package}.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
{package} = ["py.typed"]
"""

README = """\
# {dist}

A stagekit plugin. Install it and its stage shows up in `stagekit stages`:

    python -m pip install -e '.[test]'
    python -m pytest tests
    stagekit stages
"""

PLUGIN = '''\
"""The {entry} plugin: registers its stages with stagekit.

Registration imports nothing heavy: the function and the contracts are named lazily ("module:attr") and
imported when the stage first runs, so `stagekit stages` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable

from stagekit import Stage, hookimpl, stage

compute_returns = stage(
    "{package}.stages:compute_returns",
    name="{entry}.compute_returns",
    requires=["prices"],
    provides=["returns"],
    inputs={{"prices": "{package}.schemas:Prices"}},
    outputs={{"returns": "{package}.schemas:Returns"}},
    tags=["{entry}"],
    description="Daily simple returns of a price series",
)


@hookimpl
def stagekit_register_stages(register: Callable[[Stage], None]) -> None:
    register(compute_returns)
'''

STAGES = '''\
"""The stage functions (imported only when a stage runs)."""

from __future__ import annotations

import pandas as pd


def compute_returns(prices: pd.DataFrame) -> pd.DataFrame:
    out = prices.copy()
    out["return"] = out["close"].pct_change()
    return out.iloc[1:]
'''

SCHEMAS = '''\
"""The contracts at the stage's boundaries (pandera, imported only when a contract is checked)."""

from __future__ import annotations

import pandera.pandas as pa

Prices = pa.DataFrameSchema({{"close": pa.Column(float, pa.Check.gt(0))}})
Returns = pa.DataFrameSchema({{"close": pa.Column(float), "return": pa.Column(float, nullable=False)}})
'''

TEST = '''\
from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from stagekit import ContractError
from {package}.plugin import compute_returns


def test_compute_returns(run_stage: Any) -> None:
    prices = pd.DataFrame({{"close": [10.0, 11.0, 12.1]}})
    returns = run_stage(compute_returns, prices=prices)["returns"]
    assert returns["return"].round(6).tolist() == [0.1, 0.1]


def test_a_negative_price_breaks_the_contract(run_stage: Any) -> None:
    with pytest.raises(ContractError, match="close"):
        run_stage(compute_returns, prices=pd.DataFrame({{"close": [10.0, -1.0]}}))


def test_the_package_conforms(stagekit_conformance: Any) -> None:
    assert stagekit_conformance("{dist}") == []
'''


def new_plugin(name: str, where: Path, stagekit_version: str) -> Path:
    """Write the package for plugin ``name`` under ``where``; return its directory."""
    if not _NAME.match(name):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lowercase letters, digits and single '-' or '_' (e.g. 'weather')"
        )
    dist = name if name.startswith("stagekit-") else f"stagekit-{name}"
    entry = dist.removeprefix("stagekit-")
    package = dist.replace("-", "_")
    root = where / dist
    if root.exists():
        raise ScaffoldError(f"{root} already exists; pick another name or remove it")
    major, minor = (int(p) for p in re.findall(r"\d+", stagekit_version)[:2])
    values = {"dist": dist, "entry": entry, "package": package, "major_minor": f"{major}.{minor}",
              "next_minor": f"{major}.{minor + 1}"}
    files = {
        "pyproject.toml": PYPROJECT, "README.md": README, f"src/{package}/__init__.py": '"""{dist}."""\n',
        f"src/{package}/py.typed": "", f"src/{package}/plugin.py": PLUGIN, f"src/{package}/stages.py": STAGES,
        f"src/{package}/schemas.py": SCHEMAS, f"tests/test_{entry.replace('-', '_')}.py": TEST,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
    return root
