"""Reaching into a workspace's object store the way damage would, and filling its disk: for fault tests."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from stagekit.snapshots.layout import Layout


def stored_at(ws: Layout, digest: str) -> Path:
    """The file the store keeps ``digest`` in."""
    return ws.objects_dir / digest[:2] / digest


def overwrite_stored(ws: Layout, digest: str, data: bytes, at: int = 0) -> None:
    """Write ``data`` over the stored content, ``at`` bytes into it, in place (as root can, read-only or not)."""
    path = stored_at(ws, digest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data)


def stored_files(ws: Layout) -> list[Path]:
    return sorted(p for p in ws.objects_dir.rglob("*") if p.is_file())


def contents_are_whole(ws: Layout) -> bool:
    """Every object hashes to its name."""
    return all(hashlib.sha256(p.read_bytes()).hexdigest() == p.name for p in stored_files(ws))


# The os functions that write data: on a full disk each raises ENOSPC (Python's own file objects write below
# ``os`` and are not affected; tests/snapshots/test_faults.py also runs stagekit on a really full filesystem).
DATA_WRITES = ("write", "pwrite", "writev", "pwritev", "copy_file_range", "sendfile", "posix_fallocate")


def fill_disk(monkeypatch: pytest.MonkeyPatch, after: int = 0, also: Sequence[str] = ()) -> list[str]:
    """Make the disk full as ``os`` sees it: after ``after`` calls that write data succeed, every one raises
    ``OSError(ENOSPC)``, as do the ``os`` functions named in ``also`` (e.g. "mkdir": a full ext4 has no block
    for a new directory). Returns the names of the calls refused, as they are refused."""
    refused: list[str] = []
    allowed = [after]

    def full(name: str, real: Callable[..., Any], always: bool) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if not always and allowed[0] > 0:
                allowed[0] -= 1
                return real(*args, **kwargs)
            refused.append(name)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return call

    for name in dict.fromkeys((*DATA_WRITES, *also)):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, full(name, getattr(os, name), always=name in also))
    return refused


def unshare_or_skip() -> str:
    """The path of ``unshare`` (to mount a really full tmpfs in a private namespace), or the test is skipped."""
    unshare = shutil.which("unshare")
    if unshare is None or sys.platform != "linux":
        pytest.skip("needs Linux unshare(1)")
    probe = subprocess.run([unshare, "-rm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"user and mount namespaces are not available: {probe.stderr.decode().strip()}")
    return unshare
