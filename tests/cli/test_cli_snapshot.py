"""``stagekit snapshot ...``: through ``stagekit.cli.main`` and, at the end, the installed console script."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stagekit.cli import main
from stagekit.snapshots.layout import ENV_VAR
from stagekit.workspace import Workspace
from store_tools import fill_disk, overwrite_stored, stored_at


@pytest.fixture
def ws(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The shared empty workspace, with features, as the current directory."""
    (ws.features_dir / "a.parquet").write_bytes(b"A" * 2048)
    (ws.features_dir / "b.parquet").write_bytes(b"B" * 10)
    (ws.features_dir / "latest").symlink_to("a.parquet")
    monkeypatch.chdir(ws.root)
    return ws


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_show_verify_restore_delete(
    ws: Workspace, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "snapshot", "create", "golden", "features")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "created snapshot 'golden': 2 files, 2.0 KiB from features",
        "  read 2 changed or new files (2.0 KiB); stored 2 new contents (2.0 KiB)"]

    code, out, _ = run(capsys, "snapshot", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["NAME", "CREATED", "FILES", "SIZE", "PATHS"]
    assert lines[1].split()[0] == "golden" and lines[1].split()[2:] == ["2", "2.0", "KiB", "features"]

    code, out, _ = run(capsys, "snapshot", "show", "golden")
    assert code == 0 and "snapshot  golden" in out
    rows = [line.split() for line in out.splitlines()[-3:]]
    assert rows[0][0] == "0644" and rows[0][-1] == "features/a.parquet"
    assert rows[2] == ["link", "-", "-", "features/latest", "->", "a.parquet"]

    code, out, _ = run(capsys, "snapshot", "verify", "golden")
    assert (code, out) == (0, "ok: snapshot 'golden' verified, 2 stored files (2.0 KiB) match\n")

    code, out, _ = run(capsys, "snapshot", "restore", "golden", "--to", str(tmp_path / "out"))
    assert code == 0 and "restored snapshot 'golden'" in out and "verified" in out
    assert (tmp_path / "out" / "features" / "a.parquet").read_bytes() == b"A" * 2048

    code, out, _ = run(capsys, "snapshot", "delete", "golden")
    assert (code, out) == (0, "deleted snapshot 'golden'; removed 2 stored contents no other snapshot uses "
                              "(2.0 KiB freed)\n")
    code, out, _ = run(capsys, "snapshot", "list")
    assert out.startswith("no snapshots")


def test_json_output(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "snapshot", "create", "s", "features", "--json")
    created = json.loads(out)
    assert code == 0 and created["files"] == 2 and created["objects_added"] == 2
    listed = json.loads(run(capsys, "snapshot", "list", "--json")[1])
    assert [(s["name"], s["files"], s["size"], s["paths"]) for s in listed] == [("s", 2, 2058, ["features"])]
    manifest = json.loads(run(capsys, "snapshot", "show", "s", "--json")[1])
    assert manifest["algorithm"] == "sha256"
    assert [e["type"] for e in manifest["entries"]] == ["file", "file", "symlink"]
    assert json.loads(run(capsys, "snapshot", "verify", "s", "--json")[1])["ok"] is True


def test_verify_exits_1_listing_every_problem(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "snapshot", "create", "s", "features")
    snap = ws.snapshot("s")
    for e in snap.files:
        if e.path.endswith("a.parquet"):
            overwrite_stored(ws, e.hash, b"tampered")
        else:
            stored_at(ws, e.hash).unlink()
    code, out, _ = run(capsys, "snapshot", "verify", "s")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "snapshot 's' does NOT verify: 2 problem(s) in the stored files"
    assert lines[1].split()[:2] == ["changed", "features/a.parquet:"]
    assert lines[2].split()[:2] == ["missing", "features/b.parquet:"]
    code, out, _ = run(capsys, "snapshot", "verify", "s", "--json")
    assert code == 1 and [p["kind"] for p in json.loads(out)["problems"]] == ["changed", "missing"]


def test_verify_against_the_live_tree(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "snapshot", "create", "s", "features")
    (ws.features_dir / "b.parquet").unlink()
    (ws.features_dir / "c.parquet").write_text("new")
    code, out, _ = run(capsys, "snapshot", "verify", "s", "--against", ".")
    assert code == 1
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [
        ["missing", "features/b.parquet:"], ["extra", "features/c.parquet:"]]


def test_paths_are_relative_to_the_current_directory_inside_the_workspace(
    ws: Workspace, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ws.features_dir)
    assert run(capsys, "snapshot", "create", "here", ".")[0] == 0  # the workspace is found upwards
    assert ws.snapshot("here").paths == ("features",)
    monkeypatch.chdir(tmp_path)  # outside: relative to the workspace root
    assert run(capsys, "--workspace", str(ws.root), "snapshot", "create", "there", "features")[0] == 0
    assert ws.snapshot("there").paths == ("features",)
    monkeypatch.setenv(ENV_VAR, str(ws.root))
    assert "here" in run(capsys, "snapshot", "list")[1]


@pytest.mark.parametrize(("argv", "message"), [
    (["snapshot", "create", "a/b", "features"], "snapshot name 'a/b' contains a path separator"),
    (["snapshot", "create", "s", "/etc"], "path '/etc' is outside the workspace"),
    (["snapshot", "create", "s", "nope"], "path does not exist: nope"),
    (["snapshot", "show", "nope"], "no snapshot named 'nope'"),
    (["snapshot", "verify", "nope"], "no snapshot named 'nope'"),
    (["snapshot", "delete", "nope"], "no snapshot named 'nope'"),
    (["--workspace", "/does/not/exist", "snapshot", "list"], "(from --workspace) does not exist"),
])
def test_errors_print_one_line_and_exit_2(
    ws: Workspace, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith("stagekit: error: ") and message in err
    assert len(err.splitlines()) <= 2 and "Traceback" not in err


def test_existing_name_and_busy_workspace(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "snapshot", "create", "s", "features")
    code, _, err = run(capsys, "snapshot", "create", "s", "features")
    assert code == 2 and "'s' already exists" in err
    with ws.lock("write", purpose="creating snapshot 'other'"):
        code, _, err = run(capsys, "snapshot", "create", "t", "features", "--wait", "0.1")
    assert code == 2 and f"busy: another process holds write.lock (pid {os.getpid()}: creating" in err


def test_restore_refuses_a_non_empty_target_and_warns_about_hardlinks(
    ws: Workspace, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run(capsys, "snapshot", "create", "s", "features")
    code, _, err = run(capsys, "snapshot", "restore", "s", "--to", str(ws.features_dir))
    assert code == 2 and "exists and is not an empty directory" in err
    code, out, err = run(capsys, "snapshot", "restore", "s", "--to", str(tmp_path / "hl"), "--hardlink")
    assert code == 0 and "(hardlink, verified)" in out
    assert (tmp_path / "hl" / "features" / "b.parquet").stat().st_nlink == 2  # the file and its stored object
    assert err.startswith("warning: --hardlink") and "corrupts the snapshot" in err


# --- faults (issue 13): one line naming the file, exit 2, and nothing lost -------------------------------


def one_line_error(err: str, *fragments: str) -> None:
    assert err.startswith("stagekit: error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_delete_and_gc_on_a_full_disk(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "snapshot", "create", "s", "features")
    (ws.features_dir / "a.parquet").write_bytes(b"changed")
    run(capsys, "snapshot", "create", "t", "features")
    with pytest.MonkeyPatch.context() as full:
        fill_disk(full, also=("mkdir", "rename", "replace"))
        assert run(capsys, "snapshot", "delete", "s") == (
            0, "deleted snapshot 's'; removed 1 stored contents no other snapshot uses (2.0 KiB freed)\n", "")
        assert run(capsys, "snapshot", "gc") == (0, "removed 0 stored contents no snapshot uses (0 B freed)\n", "")
    assert run(capsys, "snapshot", "verify", "t")[0] == 0


@pytest.mark.parametrize("fault", ["full disk", "no directory", "file in the way"])
def test_restore_failures_print_one_line_naming_the_file(
    ws: Workspace, capsys: pytest.CaptureFixture[str], tmp_path: Path, fault: str
) -> None:
    run(capsys, "snapshot", "create", "s", "features")
    obj = stored_at(ws, next(e.hash for e in ws.snapshot("s").files if e.path == "features/b.parquet"))
    target = tmp_path / "new" / "out"
    if fault == "file in the way":
        (tmp_path / "new").write_text("mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.MonkeyPatch.context() as full:
        fill_disk(full, after=1, also=("mkdir",) if fault == "no directory" else ())
        code, out, err = run(capsys, "snapshot", "restore", "s", "--to", str(target))
    assert (code, out) == (2, "")
    one_line_error(err, "could not restore snapshot 's' to ", str(target), *{
        "full disk": ["features/b.parquet: No space left on device (copying stored object ", str(obj),
                      str(target / "features" / "b.parquet"), "nothing was left behind"],
        "no directory": [f"cannot create directory '{tmp_path / 'new'}': No space left on device"],
        "file in the way": [f"'{tmp_path / 'new'}' is in the way (it is not a directory)"],
    }[fault])
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-made
    assert run(capsys, "snapshot", "verify", "s")[0] == 0


def test_hardlink_restore_across_filesystems_copies_and_says_so(
    ws: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run(capsys, "snapshot", "create", "s", "features")

    def cross(src: str, dst: str, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), src, None, dst)

    monkeypatch.setattr(os, "link", cross)
    code, out, err = run(capsys, "snapshot", "restore", "s", "--to", str(tmp_path / "hl"), "--hardlink")
    assert code == 0 and out.endswith(": 2 files, 2.0 KiB (hardlink+copy (2 files copied: another filesystem), "
                                      "verified)\n")
    assert err.startswith("warning: --hardlink")
    assert (tmp_path / "hl" / "features" / "b.parquet").stat().st_nlink == 1  # a copy


def test_a_pinned_run_on_a_full_disk_fails_in_one_line(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "snapshot", "create", "golden", "features")
    (ws.root / "pipeline.toml").write_text('[pipeline]\ntargets = ["anything"]\n')
    with pytest.MonkeyPatch.context() as full:
        fill_disk(full)
        code, out, err = run(capsys, "run", "pipeline.toml", "--snapshot", "golden")
    assert (code, out) == (2, "")
    one_line_error(err, "could not check out snapshot 'golden' into ", "features/a.parquet: No space left on "
                   "device (copying stored object ", "nothing was left behind")
    assert sorted(p.name for p in ws.checkouts_dir.iterdir()) == []


def test_an_os_error_nobody_worded_still_prints_one_line(
    ws: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Workspace) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(self.snapshots_dir))

    monkeypatch.setattr(Workspace, "snapshots", broken)
    code, out, err = run(capsys, "snapshot", "list")
    assert (code, out) == (2, "")
    one_line_error(err, f"snapshot list failed: Input/output error ('{ws.snapshots_dir}')")


def test_missing_subcommand_is_a_usage_error(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["snapshot"])
    assert info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("json_out", [False, True])
def test_progress_shows_on_a_terminal_unless_json(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], json_out: bool
) -> None:
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert main(["snapshot", "create", "s", "features", *(["--json"] if json_out else [])]) == 0
    text = tty.getvalue()
    assert ("reading 2/2 files, 2.0 KiB of 2.0 KiB" in text and text.endswith("\r\x1b[2K")) != json_out
    assert (text == "") == json_out


def test_installed_console_script(ws: Workspace, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("stagekit")
    env = {**os.environ, ENV_VAR: str(ws.root)}

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *argv], capture_output=True, text=True, env=env, cwd=tmp_path,
                              check=False, timeout=120)

    assert cli("snapshot", "create", "s", "features").returncode == 0
    listed = cli("snapshot", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["name"] == "s"
    overwrite_stored(ws, ws.snapshot("s").files[0].hash, b"x")
    bad = cli("snapshot", "verify", "s")
    assert bad.returncode == 1 and "changed  features/a.parquet" in bad.stdout
    err = cli("snapshot", "create", "s", "features")
    assert err.returncode == 2 and err.stderr.startswith("stagekit: error:") and "Traceback" not in err.stderr
