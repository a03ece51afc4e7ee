"""tests/run: the fault stages (fault_stages.py) importable by name in worker processes too."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(filter(None, [HERE, *os.environ.get("PYTHONPATH", "")
                                                                         .split(os.pathsep)])))
