"""The manifest file: one JSON document, one entry per line, read back whatever its layout, checked on read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stagekit.errors import SnapshotError
from stagekit.snapshots.manifest import Entry, Snapshot, dumps, loads
from stagekit.workspace import Workspace

SNAP = Snapshot("s", "2026-11-27T00:00:00Z", ("data",), (
    Entry("data/a.csv", "file", 0o644, 3, "ab" * 32),
    Entry('data/odd "name"\n.csv', "file", 0o600, 5, "cd" * 32),
    Entry("data/link", "symlink", target="a.csv"),
    Entry("data/empty", "dir", 0o755),
))


def test_dumps_loads_round_trip_one_entry_per_line() -> None:
    text = dumps(SNAP)
    assert loads(text.encode()) == SNAP
    assert text.count("\n") == len(SNAP.entries) + 2  # the header line, one per entry, the closing line
    assert json.loads(text)["entries"][1]["path"] == 'data/odd "name"\n.csv'
    assert loads(json.dumps(SNAP.to_json(), indent=2)) == SNAP  # laid out otherwise: read the same


def test_load_and_verify_refuse_the_same_damaged_manifest(tmp_path: Path) -> None:
    ws = Workspace(tmp_path).init()
    (ws.data_dir / "a.csv").write_text("a,b\n")
    ws.create_snapshot("s", ["data"])
    manifest = ws.snapshots_dir / "s.json"
    manifest.write_text(manifest.read_text().replace('"}\n]}', '"},\n]}'))  # a trailing comma
    for read in (lambda: ws.snapshot("s"), lambda: ws.verify_snapshot("s")):
        with pytest.raises(SnapshotError, match=r"manifest .*s\.json' is damaged"):
            read()
