"""The manifest file: written one entry per line, read back fast, and read the same way by load and verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stagekit.snapshots.manifest import cut, dumps, entries, file_columns, layout, lines, loads
from stagekit.snapshots.snapshot import SnapshotError
from stagekit.snapshots.types import Entry, Snapshot
from stagekit.snapshots.workspace import Workspace

H = "ab" * 32
SNAP = Snapshot("s", "2026-11-27T00:00:00Z", ("data",), (
    Entry("data/a.csv", "file", 0o644, 3, H),
    Entry('data/odd "name".csv', "file", 0o600, 5, "cd" * 32),  # JSON escapes it: read by json, not the regex
    Entry("data/link", "symlink", target="a.csv"),
    Entry("data/empty", "dir", 0o755),
))


def test_dumps_loads_round_trip_one_entry_per_line() -> None:
    text = dumps(SNAP)
    assert loads(text.encode()) == SNAP
    assert text.count("\n") == len(SNAP.entries) + 2  # the header line, one per entry, the closing line
    assert json.loads(text)["entries"][1]["path"] == 'data/odd "name".csv'


def test_a_manifest_not_laid_out_as_written_is_read_as_plain_json() -> None:
    other = json.dumps(SNAP.to_json(), indent=2).encode()
    assert layout(other) is None and loads(other) == SNAP


def test_file_columns_only_for_plain_file_lines_laid_out_as_json() -> None:
    header, text = layout(dumps(SNAP).encode()) or ({}, "")
    assert header["file_count"] == 2 and file_columns(text) is None  # a symlink line: not only plain files
    plain = lines(text)[0]
    assert file_columns(",\n".join([plain] * 3)) == (["data/a.csv"] * 3, [3] * 3, [H] * 3)
    for bad in (plain + ",", plain + "\n" + plain):  # what JSON refuses: refused by the slow path too
        assert file_columns(bad) is None
        with pytest.raises(ValueError):
            entries(lines(bad))
    spaced = plain + ",\n" + plain + " "  # valid JSON, not as written: read by the slow path
    assert file_columns(spaced) is None and len(entries(lines(spaced))) == 2


def test_cut_keeps_whole_lines_and_every_line() -> None:
    text = ",\n".join(f'{{"n": {i}}}' for i in range(101))
    for n in (1, 2, 3, 7):
        chunks = cut(text, n)
        assert len(chunks) == n and ",\n".join(chunks) == text
        assert all(c.startswith("{") and c.endswith("}") for c in chunks)
    assert cut("", 2) == []


def test_load_and_verify_refuse_the_same_damaged_manifest(tmp_path: Path) -> None:
    ws = Workspace(tmp_path).init()
    (ws.data_dir / "a.csv").write_text("a,b\n")
    ws.create_snapshot("s", ["data"])
    manifest = ws.snapshots_dir / "s.json"
    manifest.write_text(manifest.read_text().replace('"}\n]}', '"},\n]}'))  # a trailing comma
    for read in (lambda: ws.snapshot("s"), lambda: ws.verify_snapshot("s")):
        with pytest.raises(SnapshotError, match=r"manifest .*s\.json' is damaged"):
            read()
