"""docs/faults.md stays true: every test a row of its "Runs" section names exists (and, being a test of
this suite, passes). A name is ``path::test`` or, without a path, a test in the section's default file
(the path given by its "Tests are in `...` unless a path is given")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
SECTIONS = ("Runs", "The run store")  # the sections this test keeps true; others' owners may add theirs


def rows(section: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """(the section's default test file, [(fault, [test names])])."""
    text = (ROOT / "docs" / "faults.md").read_text(encoding="utf-8")
    body = re.split(r"^## ", text, flags=re.M)
    (part,) = [b for b in body if b.startswith(section + "\n")]
    default = re.search(r"Tests are in\s+`([^`]+)`\s+unless a path is given", part)
    assert default is not None, f"section {section!r} names no default test file"
    found = []
    for line in part.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("fault", "---") or set(cells[0]) <= {"-"}:
            continue
        found.append((cells[0], re.findall(r"`([^`]+)`", cells[2])))
    return default.group(1), found


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_test_named_in_the_fault_table_exists() -> None:
    missing = []
    for section in SECTIONS:
        default, table = rows(section)
        assert len(table) >= 10
        for fault, names in table:
            assert names, f"{section}: the row {fault!r} names no test"
            for name in names:
                path, _, test = name.rpartition("::")
                file = ROOT / (path or default)
                if not file.exists() or test not in defined_tests(file):
                    missing.append(f"{section}: {fault!r}: {name}")
    assert missing == []
