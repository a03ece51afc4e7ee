"""Every Python code sample in the README and docs/ runs, so the docs cannot rot.

The samples of one file run in order in one fresh interpreter (a later sample may use an earlier one's
names), in a temporary directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def samples(path: Path) -> list[str]:
    return FENCE.findall(path.read_text())


@pytest.mark.parametrize("path", [p for p in DOCS if p.exists() and samples(p)], ids=lambda p: p.name)
def test_the_code_samples_run(path: Path, tmp_path: Path) -> None:
    blocks = samples(path)
    script = "\n\n".join(f"# --- sample {i + 1} of {path.name}\n{block}" for i, block in enumerate(blocks))
    (tmp_path / "samples.py").write_text(script)
    proc = subprocess.run([sys.executable, "samples.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"{path.name}:\n{proc.stdout}\n{proc.stderr}"


def test_there_are_samples_to_run() -> None:
    assert sum(len(samples(p)) for p in DOCS if p.exists()) >= 10
