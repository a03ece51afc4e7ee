"""Every hook spec is exercised by some test (a spec nobody tests is a spec that rots)."""

from __future__ import annotations

from pathlib import Path

from stagekit import hookspecs

ROOT = Path(__file__).parents[1]


def test_every_hook_spec_has_a_test() -> None:
    specs = [n for n in dir(hookspecs) if n.startswith("stagekit_")]
    assert len(specs) >= 10
    sources = [p.read_text() for p in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/*/tests/**/*.py")]
               if p.name != "test_hookspecs.py"]
    untested = [n for n in specs if not any(n in text for text in sources)]
    assert untested == []


def test_every_hook_is_prefixed_and_documented() -> None:
    for name in dir(hookspecs):
        if name.startswith("stagekit_"):
            assert getattr(hookspecs, name).__doc__, name
