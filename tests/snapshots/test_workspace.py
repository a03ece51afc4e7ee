"""The workspace: locating it, its layout, paths, locks, run records and read-only checkouts."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from stagekit.errors import SnapshotCorruptError, SnapshotNotFoundError, WorkspaceError, WorkspaceLockedError
from stagekit.snapshots.layout import ENV_VAR
from stagekit.workspace import Workspace
from store_tools import overwrite_stored

# --- locating ------------------------------------------------------------------------------------------


def test_locate_prefers_explicit_then_environment_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit, env, cwd = (tmp_path / n for n in ("explicit", "env", "cwd"))
    for d in (explicit, env, cwd):
        d.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv(ENV_VAR, str(env))
    assert Workspace.locate(str(explicit)).root == explicit.resolve()
    assert Workspace.locate(None).root == env.resolve()
    monkeypatch.setenv(ENV_VAR, "")
    assert Workspace.locate(None).root == cwd.resolve()
    monkeypatch.delenv(ENV_VAR)
    assert Workspace.locate().root == cwd.resolve()


def test_locate_finds_the_enclosing_workspace_from_a_subdirectory(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    (ws.features_dir / "sub").mkdir()
    monkeypatch.chdir(ws.features_dir / "sub")
    assert Workspace.locate() == ws


def test_locate_names_the_source_of_a_bad_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(WorkspaceError, match=r"'.*missing' \(from --workspace\) does not exist"):
        Workspace.locate(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "file"))
    with pytest.raises(WorkspaceError, match=r"from \$STAGEKIT_WORKSPACE\) does not exist or is not a dir"):
        Workspace.locate(None)


def test_init_creates_the_documented_layout(ws: Workspace) -> None:
    for d in ("data", "features", "runs", ".stagekit/objects", ".stagekit/snapshots", ".stagekit/checkouts",
              ".stagekit/cache", ".stagekit/locks", ".stagekit/tmp"):
        assert (ws.root / d).is_dir(), d
    assert (ws.state_dir / ".gitignore").read_text() == "*\n"
    assert ws.init() == ws  # idempotent


def test_relative_paths(ws: Workspace, tmp_path: Path) -> None:
    (ws.root / "link-to-features").symlink_to("features")
    assert ws.relative(ws.root) == "."
    assert ws.relative("features/x.parquet") == "features/x.parquet"
    assert ws.relative(ws.root / "data") == "data"
    assert ws.relative("link-to-features/x") == "features/x"  # parent symlinks are resolved...
    assert ws.relative("link-to-features") == "link-to-features"  # ...the path itself is not followed
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        ws.relative(tmp_path)
    with pytest.raises(WorkspaceError, match="own state"):
        ws.relative(".stagekit/snapshots")


# --- locks ---------------------------------------------------------------------------------------------


def test_lock_refuses_a_second_holder_and_waits_when_asked(ws: Workspace) -> None:
    with ws.lock("write", purpose="testing"):
        with pytest.raises(WorkspaceLockedError, match=rf"pid {os.getpid()}: testing") as info, \
                ws.lock("write", wait=0.1):
            pass
        assert info.value.holder == f"pid {os.getpid()}: testing"
        with ws.lock("gc", shared=True), ws.lock("gc", shared=True):  # readers share
            pass
    with ws.lock("write", wait=0.1):
        pass


# --- run records ---------------------------------------------------------------------------------------


def test_record_run_writes_json_atomically(ws: Workspace) -> None:
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    path = ws.record_run("20240501-1230-abc", {"snapshot": "golden", "inputs": ws.root / "x",
                                               "started": when, "tags": {"b", "a"}})
    assert path == ws.runs_dir / "20240501-1230-abc.json"
    assert json.loads(path.read_text()) == {"snapshot": "golden", "inputs": str(ws.root / "x"),
                                            "started": "2024-05-01T12:30:00+00:00", "tags": ["a", "b"]}
    ws.record_run("20240501-1230-abc", {"status": "done"})
    assert json.loads(path.read_text()) == {"status": "done"}
    assert [p.name for p in ws.runs_dir.iterdir()] == ["20240501-1230-abc.json"]  # no temporaries left


@pytest.mark.parametrize("run_id", ["", "../escape", "a/b", ".hidden"])
def test_record_run_refuses_bad_ids(ws: Workspace, run_id: str) -> None:
    with pytest.raises(WorkspaceError, match="run id"):
        ws.record_run(run_id, {})


def test_record_run_refuses_unserialisable_records_and_keeps_the_old_one(ws: Workspace) -> None:
    ws.record_run("r", {"ok": 1})
    with pytest.raises(WorkspaceError, match="run 'r' cannot be written as JSON: object value"):
        ws.record_run("r", {"bad": object()})
    assert json.loads((ws.runs_dir / "r.json").read_text()) == {"ok": 1}


def test_record_run_creates_runs_dir(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    assert ws.record_run("r", {}).parent == tmp_path / "runs"


# --- checkouts -----------------------------------------------------------------------------------------


def _snapshot(ws: Workspace) -> None:
    (ws.features_dir / "a.parquet").write_bytes(b"A" * 1000)
    (ws.features_dir / "sub").mkdir()
    (ws.features_dir / "sub" / "b.parquet").write_bytes(b"B" * 10)
    (ws.features_dir / "latest").symlink_to("a.parquet")
    ws.create_snapshot("golden", ["features"])


def test_checkout_is_a_read_only_copy_built_once(ws: Workspace) -> None:
    _snapshot(ws)
    root = ws.checkout("golden")
    assert root == ws.checkouts_dir / "golden"
    a = root / "features" / "a.parquet"
    assert a.read_bytes() == b"A" * 1000
    assert (root / "features" / "sub" / "b.parquet").read_bytes() == b"B" * 10
    assert os.readlink(root / "features" / "latest") == "a.parquet"
    assert stat.S_IMODE(a.stat().st_mode) == 0o444
    assert stat.S_IMODE((root / "features").stat().st_mode) == 0o555
    assert a.stat().st_nlink == 1  # a copy: a stage writing into its inputs cannot reach the store
    inode = a.stat().st_ino
    assert ws.checkout("golden") == root and a.stat().st_ino == inode  # cached, not rebuilt

    (ws.features_dir / "a.parquet").write_bytes(b"changed")  # the source changing changes nothing
    assert ws.checkout("golden") == root and a.read_bytes() == b"A" * 1000


@pytest.mark.parametrize("damage", ["rewrite", "remove", "add", "retarget"])
def test_damaged_checkout_is_rebuilt(ws: Workspace, damage: str) -> None:
    _snapshot(ws)
    root = ws.checkout("golden")
    a = root / "features" / "a.parquet"
    (root / "features").chmod(0o755)  # as a careless stage running as root might
    if damage == "rewrite":
        with open(a, "r+b") as f:  # same size, in place
            f.write(b"Z")
    elif damage == "remove":
        a.unlink()
    elif damage == "add":
        (root / "features" / "extra").write_text("x")
    else:
        (root / "features" / "latest").unlink()
        (root / "features" / "latest").symlink_to("sub/b.parquet")
    assert ws.checkout("golden") == root
    assert a.read_bytes() == b"A" * 1000
    assert not (root / "features" / "extra").exists()
    assert os.readlink(root / "features" / "latest") == "a.parquet"
    assert stat.S_IMODE((root / "features").stat().st_mode) == 0o555


def test_checkout_of_a_recreated_snapshot_is_rebuilt(ws: Workspace) -> None:
    _snapshot(ws)
    ws.checkout("golden")
    ws.delete_snapshot("golden")
    (ws.features_dir / "a.parquet").write_bytes(b"new")
    ws.create_snapshot("golden", ["features"])
    assert (ws.checkout("golden") / "features" / "a.parquet").read_bytes() == b"new"


def test_checkout_errors(ws: Workspace) -> None:
    with pytest.raises(SnapshotNotFoundError, match="'nope'"):
        ws.checkout("nope")
    _snapshot(ws)
    digest = next(e.hash for e in ws.snapshot("golden").files if e.path == "features/a.parquet")
    overwrite_stored(ws, digest, b"!")
    with pytest.raises(SnapshotCorruptError, match=r"features/a\.parquet"):
        ws.checkout("golden")
    assert sorted(p.name for p in ws.checkouts_dir.iterdir()) == []


def test_importing_workspace_and_snapshot_is_light() -> None:
    code = ("import sys, stagekit.workspace, stagekit.snapshots.snapshot; "
            "sys.exit(any(m in sys.modules for m in ('pandas', 'pyarrow', 'pandera', 'ray')))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
