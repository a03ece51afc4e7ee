"""stagekit.atomic: a reader sees the old file or the new one, never half; failures leave no debris."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from stagekit.atomic import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
    copy_file,
)


def _debris(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_writes_new_file_with_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    old = os.umask(0o022)
    try:
        assert atomic_write_bytes(target, b"abc") == target
    finally:
        os.umask(old)
    assert target.read_bytes() == b"abc"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert _debris(tmp_path) == []


def test_replaces_existing_file_keeping_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    target.chmod(0o640)
    inode = target.stat().st_ino
    atomic_write_text(target, "new ünïcode")
    assert target.read_text(encoding="utf-8") == "new ünïcode"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != inode  # a new file took the name: hard links to the old one are untouched


def test_explicit_permissions(tmp_path: Path) -> None:
    target = atomic_write_bytes(tmp_path / "ro", b"x", permissions=0o444)
    assert stat.S_IMODE(target.stat().st_mode) == 0o444


def test_text_mode_context_manager(tmp_path: Path) -> None:
    target = tmp_path / "t.csv"
    with atomic_write(target, "w", newline="") as f:
        f.write("a,b\r\n1,2\r\n")
        assert not target.exists()  # nothing visible until the block ends
    assert target.read_bytes() == b"a,b\r\n1,2\r\n"


def test_error_in_block_keeps_old_file_and_removes_temporary(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("original")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(target, "w") as f:
        f.write("half of the new")
        raise RuntimeError("boom")
    assert target.read_text() == "original"
    assert _debris(tmp_path) == []


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_full_disk_or_failed_rename_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "keep.bin"
    target.write_bytes(b"original")

    def fail(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError) as info:
        atomic_write_bytes(target, b"new contents")
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"original"
    assert _debris(tmp_path) == []


def test_json_that_cannot_be_serialised_touches_nothing(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("{}")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"x": object()})
    assert target.read_text() == "{}"
    atomic_write_json(target, {"x": [1, 2]}, indent=2)
    assert target.read_text() == '{\n  "x": [\n    1,\n    2\n  ]\n}\n'


def test_rejects_non_write_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        atomic_write(tmp_path / "x", "a")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="text mode"):
        atomic_write(tmp_path / "x", "wb", encoding="utf-8")  # type: ignore[call-overload]


def test_parquet_round_trip_and_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "prices.parquet"
    df = pd.DataFrame({"ticker": ["A", "B"], "price": [1.5, 2.5]})
    atomic_write_parquet(df, target)
    pd.testing.assert_frame_equal(pd.read_parquet(target), df)
    before = target.read_bytes()
    bad = pd.DataFrame({"mixed": [1, "two", 3.0]})  # pyarrow refuses a column of mixed types
    with pytest.raises(Exception, match=r"(?i)conver|type"):
        atomic_write_parquet(bad, target)
    assert target.read_bytes() == before
    assert _debris(tmp_path) == []


def test_killed_writer_leaves_destination_intact(tmp_path: Path) -> None:
    """A process that dies mid-write (no cleanup runs) cannot damage the destination."""
    target = tmp_path / "data.bin"
    target.write_bytes(b"v1" * 1000)
    code = textwrap.dedent(f"""
        import os
        from stagekit.atomic import atomic_write
        with atomic_write({str(target)!r}) as f:
            f.write(b"v2" * 500)
            f.flush()
            os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == 9
    assert target.read_bytes() == b"v1" * 1000
    assert len(_debris(tmp_path)) == 1  # the documented leftover: .data.bin.<random>.tmp


def test_copy_file_copies_content_and_mode(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(3 << 20))
    src.chmod(0o600)
    method = copy_file(src, tmp_path / "dst")
    assert method in {"reflink", "copy"}
    assert (tmp_path / "dst").read_bytes() == src.read_bytes()
    assert stat.S_IMODE((tmp_path / "dst").stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        copy_file(src, tmp_path / "dst")


def test_copy_file_falls_back_to_read_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(*args: object) -> int:
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", unsupported)
    src = tmp_path / "src"
    src.write_bytes(os.urandom(2_500_000))
    assert copy_file(src, tmp_path / "dst", permissions=0o444) == "copy"
    assert (tmp_path / "dst").read_bytes() == src.read_bytes()
    assert stat.S_IMODE((tmp_path / "dst").stat().st_mode) == 0o444


def test_importing_atomic_does_not_import_pandas() -> None:
    code = "import sys, stagekit.atomic; sys.exit('pandas' in sys.modules or 'pyarrow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
