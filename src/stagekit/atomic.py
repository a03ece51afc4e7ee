"""Atomic file writes for stages: readers see the old file or the new one, never half of either.

Every helper writes a temporary file in the destination's own directory (so the final ``os.replace`` is a
rename within one filesystem), flushes and fsyncs it, renames it over the destination and fsyncs the
directory so the rename itself survives a crash. If anything fails before the rename, the temporary file is
removed and the destination is left exactly as it was.

A process killed with SIGKILL (or a power cut) mid-write can leave a temporary file named
``.<name>.<random>.tmp`` beside the destination; the destination itself is never damaged.

::

    from stagekit.atomic import atomic_write, atomic_write_parquet

    with atomic_write("features/prices.csv", "w") as f:
        f.write(text)
    atomic_write_parquet(df, "features/prices.parquet")
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_parquet",
    "atomic_write_text",
    "copy_file",
    "fsync_dir",
    "sync_filesystem",
]

_TEXT_MODES = ("w", "wt")
_BINARY_MODES = ("wb",)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the entries of directory ``path`` (new names, renames, removals) durable.

    A no-op where directories cannot be opened (Windows).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(path: str | os.PathLike[str]) -> None:
    """Make everything written to the filesystem holding ``path`` durable, in one call.

    Linux ``syncfs(2)``: one flush instead of one fsync per file, which is what makes storing thousands of
    small files affordable. Elsewhere ``os.sync()``. Raises ``OSError`` if the flush reports an error.
    """
    syncfs = _syncfs()
    if syncfs is None:  # pragma: no cover - not Linux
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            import ctypes

            err = ctypes.get_errno()
            raise OSError(err, f"syncfs failed: {os.strerror(err)}", os.fspath(path))
    finally:
        os.close(fd)


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    import ctypes

    try:
        func: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return None
    return func


def _default_mode(path: Path) -> int:
    """Keep the permission bits of the file being replaced; a new file gets 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@overload
def atomic_write(
    path: str | os.PathLike[str],
    mode: Literal["wb"] = ...,
    *,
    encoding: None = ...,
    newline: None = ...,
    permissions: int | None = ...,
    fsync: bool = ...,
) -> contextlib.AbstractContextManager[IO[bytes]]: ...


@overload
def atomic_write(
    path: str | os.PathLike[str],
    mode: Literal["w", "wt"],
    *,
    encoding: str | None = ...,
    newline: str | None = ...,
    permissions: int | None = ...,
    fsync: bool = ...,
) -> contextlib.AbstractContextManager[IO[str]]: ...


def atomic_write(
    path: str | os.PathLike[str],
    mode: str = "wb",
    *,
    encoding: str | None = None,
    newline: str | None = None,
    permissions: int | None = None,
    fsync: bool = True,
) -> contextlib.AbstractContextManager[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit of the ``with`` block, it replaces ``path``.

    ``mode`` is ``"wb"`` (default), ``"w"`` or ``"wt"``; text mode defaults to UTF-8. ``permissions`` are the
    new file's mode bits (default: those of the file being replaced, else 0o666 less the umask). With
    ``fsync=False`` the data is not forced to disk (faster; still atomic for concurrent readers, not after a
    power cut).
    """
    if mode not in _TEXT_MODES + _BINARY_MODES:
        raise ValueError(f"atomic_write mode must be one of 'wb', 'w', 'wt', not {mode!r}")
    if mode in _BINARY_MODES and (encoding is not None or newline is not None):
        raise ValueError("atomic_write: encoding and newline apply to text mode only")
    return _atomic_write(Path(path), mode, encoding, newline, permissions, fsync)


@contextlib.contextmanager
def _atomic_write(
    path: Path, mode: str, encoding: str | None, newline: str | None, permissions: int | None, fsync: bool
) -> Iterator[IO[Any]]:
    directory = path.parent
    perms = _default_mode(path) if permissions is None else permissions
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        if mode in _TEXT_MODES:
            f: IO[Any] = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
        else:
            f = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), perms)
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(directory)


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, permissions: int | None = None, fsync: bool = True, keep_suffixes: int = 2
) -> Iterator[str]:
    """A temporary path beside ``path`` for a writer that wants a path, not a file (pyarrow, pandas); on a
    clean exit it replaces ``path`` (fsynced, file and rename, unless ``fsync=False``). If the block raises,
    ``path`` is left exactly as it was and the temporary (a file, or a directory the writer made) is removed.

    The temporary name keeps ``path``'s last ``keep_suffixes`` suffixes (``.<name>.<random>.tmp.csv.gz``), so a
    writer that infers the format or compression from the name still does. Missing parent directories are
    made. ``permissions`` default to those of the file being replaced (a new one: 0o666 less the umask)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = _default_mode(target) if permissions is None else permissions
    suffix = ".tmp" + "".join(target.suffixes[-keep_suffixes:] if keep_suffixes else ())
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, mode)
        if fsync and not os.path.isdir(tmp):  # a writer may make a directory (a partitioned dataset)
            _fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        _remove_path(tmp)
        raise
    if fsync:
        fsync_dir(target.parent)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_path(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, permissions: int | None = None, fsync: bool = True
) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_write(path, "wb", permissions=permissions, fsync=fsync) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    encoding: str = "utf-8",
    permissions: int | None = None,
    fsync: bool = True,
) -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding), permissions=permissions, fsync=fsync)


def atomic_write_json(
    path: str | os.PathLike[str], obj: Any, *, fsync: bool = True, **dumps_kwargs: Any
) -> Path:
    """Serialise ``obj`` with ``json.dumps(obj, **dumps_kwargs)`` and write it atomically.

    Serialisation happens before anything touches the disk, so an unserialisable value changes nothing.
    """
    text = json.dumps(obj, **dumps_kwargs)
    return atomic_write_text(path, text + "\n", fsync=fsync)


def atomic_write_parquet(
    df: pd.DataFrame, path: str | os.PathLike[str], *, fsync: bool = True, **to_parquet_kwargs: Any
) -> Path:
    """Write a pandas DataFrame to parquet atomically (``df.to_parquet`` into the temporary file).

    Plain ``df.to_parquet(path)`` truncates and rewrites ``path`` in place: a reader (or a hard link, or a
    crash) sees a half-written file. This never does. Extra keyword arguments go to ``to_parquet``.
    """
    with atomic_write(path, "wb", fsync=fsync) as f:
        df.to_parquet(f, **to_parquet_kwargs)
    return Path(path)


_FICLONE = 0x40049409  # ioctl: make dst share src's blocks (btrfs, XFS, bcachefs); refused elsewhere
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}
_no_reflink: set[int] = set()  # devices that refused a reflink: not asked again


def copy_file(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, permissions: int | None = None
) -> str:
    """Copy ``src`` to the new file ``dst`` (which must not exist); returns "reflink" or "copy".

    Tries a reflink (instant, shares blocks copy-on-write), then ``os.copy_file_range`` (the kernel copies,
    and may reflink itself), then a plain read/write loop. ``permissions`` default to ``src``'s.
    """
    sfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(sfd)
        perms = stat.S_IMODE(st.st_mode) if permissions is None else permissions
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            method = _copy_fd(sfd, dfd, st)
            os.fchmod(dfd, perms)
        except BaseException:
            os.close(dfd)
            os.unlink(dst)
            raise
        os.close(dfd)
    finally:
        os.close(sfd)
    return method


def _copy_fd(sfd: int, dfd: int, st: os.stat_result) -> str:
    if st.st_dev not in _no_reflink:
        import fcntl

        try:
            fcntl.ioctl(dfd, _FICLONE, sfd)
            return "reflink"
        except OSError:
            _no_reflink.add(st.st_dev)
    copied = 0
    try:
        while copied < st.st_size:
            n = os.copy_file_range(sfd, dfd, st.st_size - copied)  # AttributeError: not Linux
            if n == 0:
                break
            copied += n
        return "copy"
    except AttributeError:  # pragma: no cover - not Linux
        pass
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY:
            raise
    os.lseek(sfd, copied, os.SEEK_SET)
    os.lseek(dfd, copied, os.SEEK_SET)
    while chunk := os.read(sfd, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dfd, view):]
    return "copy"
