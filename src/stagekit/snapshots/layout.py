"""The workspace directory as stagekit lays it out (``docs/snapshots.md`` shows it): where everything lives,
which paths and names it accepts, how it walks the files to snapshot, and its locks. It knows nothing of
snapshots; everything above uses it.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, Self

from stagekit.atomic import atomic_write_text
from stagekit.errors import WorkspaceError, WorkspaceLockedError

ENV_VAR = "STAGEKIT_WORKSPACE"
STATE_DIR = ".stagekit"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@=-]*")
_MAX_NAME = 128
_HOLDER = 256  # bytes of "pid N: purpose" in a lock file


def check_name(name: str, what: str, error: Callable[[str], Exception] = WorkspaceError) -> str:
    """Return ``name`` if it is safe as a file name; else raise ``error`` saying why."""
    if not name:
        raise error(f"{what} is empty")
    if "/" in name or "\\" in name:
        raise error(f"{what} {name!r} contains a path separator")
    if ".." in name:
        raise error(f"{what} {name!r} contains '..'")
    if len(name) > _MAX_NAME:
        raise error(f"{what} {name[:20]!r}... is longer than {_MAX_NAME} characters")
    if not _NAME_RE.fullmatch(name):
        raise error(f"{what} {name!r} must start with a letter or digit and use only letters, digits "
                    "and . _ + @ = -")
    return name


def why(exc: OSError) -> str:
    """What went wrong, in words: the reason, then the file (or files) it concerns, if the error names any."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    files = [repr(os.fsdecode(f)) for f in (exc.filename, exc.filename2) if isinstance(f, str | bytes)]
    return f"{reason} ({' -> '.join(files)})" if files else reason


def stat_key(st: os.stat_result) -> list[int]:
    """What says a file is unchanged: size, mtime_ns, ctime_ns (no program can set it), inode, device."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def within(rel: str, roots: Iterable[str]) -> bool:
    """Whether the relative path ``rel`` is one of ``roots`` or lies under one ("." holds everything)."""
    return any(r == "." or rel == r or rel.startswith(r + "/") for r in roots)


def walk(base: str | os.PathLike[str], roots: Sequence[str]) -> Iterator[tuple[str, os.stat_result, bool]]:
    """Yield (relative path, lstat, is an empty directory) for everything under ``roots`` of ``base``.

    Depth-first in sorted order; never follows a symlink; skips ``.stagekit`` at the top and whatever
    disappears while being walked.
    """
    top = os.fspath(base)
    stack = list(reversed(roots))
    while stack:
        rel = stack.pop()
        try:
            st = os.lstat(top if rel == "." else f"{top}/{rel}")
            names = sorted(os.listdir(f"{top}/{rel}")) if stat.S_ISDIR(st.st_mode) else []
        except (FileNotFoundError, NotADirectoryError):
            continue
        children = [n for n in names if n != STATE_DIR] if rel == "." else [f"{rel}/{n}" for n in names]
        yield rel, st, stat.S_ISDIR(st.st_mode) and not children
        stack.extend(reversed(children))


class ScanItem(NamedTuple):
    """One thing to snapshot: ``kind`` is "file", "symlink" or "dir" (empty directories only)."""

    rel: str
    kind: str
    st: os.stat_result
    target: str = ""


class Layout:
    """A workspace directory: its root, where stagekit keeps its state there, its paths and its locks."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise WorkspaceError(f"workspace directory {str(path)!r} does not exist or is not a directory",
                                 path=str(path))
        self.root = Path(os.path.realpath(path))
        self.state_dir = self.root / STATE_DIR
        self.objects_dir = self.state_dir / "objects"
        self.snapshots_dir = self.state_dir / "snapshots"
        self.checkouts_dir = self.state_dir / "checkouts"
        self.cache_dir = self.state_dir / "cache"
        self.locks_dir = self.state_dir / "locks"
        self.tmp_dir = self.state_dir / "tmp"
        self.data_dir, self.features_dir, self.runs_dir = self.root / "data", self.root / "features", self.root / "runs"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    @classmethod
    def locate(cls, explicit: str | os.PathLike[str] | None = None) -> Self:
        """The workspace named by ``explicit`` (``--workspace``), else ``$STAGEKIT_WORKSPACE``, else the nearest
        of the current directory and its parents holding a ``.stagekit`` directory, else the current one."""
        for given, source in ((explicit, "--workspace"), (os.environ.get(ENV_VAR), f"${ENV_VAR}")):
            if given is not None and str(given) != "":
                path = Path(given).expanduser()
                if not path.is_dir():
                    raise WorkspaceError(f"workspace {str(path)!r} (from {source}) does not exist or is not "
                                         "a directory", path=str(path))
                return cls(path)
        cwd = Path.cwd()
        return cls(next((d for d in (cwd, *cwd.parents) if (d / STATE_DIR).is_dir()), cwd))

    def init(self) -> Self:
        """Create ``data/``, ``features/``, ``runs/`` and stagekit's state (existing ones are kept); returns self."""
        for d in (self.data_dir, self.features_dir, self.runs_dir):
            d.mkdir(exist_ok=True)
        self.ensure_state()
        return self

    def ensure_state(self) -> None:
        """Create ``.stagekit`` and its subdirectories if missing."""
        if self.tmp_dir.is_dir():
            return
        try:
            for d in (self.objects_dir, self.snapshots_dir, self.checkouts_dir, self.cache_dir, self.locks_dir,
                      self.tmp_dir):
                d.mkdir(parents=True, exist_ok=True)
            ignore = self.state_dir / ".gitignore"
            if not ignore.exists():  # stagekit's state is big and local: keep it out of version control
                atomic_write_text(ignore, "*\n")
        except OSError as exc:
            raise WorkspaceError(f"cannot create stagekit's state in {str(self.state_dir)!r}: {why(exc)}",
                                 path=str(exc.filename or self.state_dir)) from exc

    # --- paths ---------------------------------------------------------------------------------------

    def relative(self, path: str | os.PathLike[str]) -> str:
        """``path`` (absolute, or relative to the root) as a '/'-separated path relative to the root.

        Symlinks among the parent directories are resolved; the path itself is not followed. Raises
        ``WorkspaceError`` if the result lies outside the workspace or inside ``.stagekit``.
        """
        lexical = os.path.normpath(os.path.join(self.root, os.fspath(path)))
        if lexical == str(self.root):
            return "."
        real = os.path.join(os.path.realpath(os.path.dirname(lexical)), os.path.basename(lexical))
        parts = Path(os.path.relpath(real, self.root)).parts
        if not parts:
            return "."
        if parts[0] == "..":
            raise WorkspaceError(f"path {os.fspath(path)!r} is outside the workspace {str(self.root)!r}",
                                 path=os.fspath(path))
        if parts[0] == STATE_DIR:
            raise WorkspaceError(f"path {os.fspath(path)!r} is inside stagekit's own state ({STATE_DIR}/)",
                                 path=os.fspath(path))
        return "/".join(parts)

    def roots(self, paths: Iterable[str | os.PathLike[str]]) -> list[str]:
        """Validated relative paths, each existing, with paths inside another given path dropped."""
        rels = sorted({self.relative(p) for p in paths})
        if not rels:
            raise WorkspaceError("no paths given")
        missing = [r for r in rels if not os.path.lexists(self.root / r)]
        if missing:
            raise WorkspaceError("path does not exist: " + ", ".join(missing), path=missing[0],
                                 problems=[f"{m}: does not exist" for m in missing])
        return [r for r in rels if not within(r, [o for o in rels if o != r])]

    def scan(self, roots: Sequence[str]) -> list[ScanItem]:
        """Every file, symlink and empty directory under ``roots``, in ``walk`` order; follows no symlink.

        A symlink is kept as a link only if it resolves inside ``roots``; one that resolves outside the
        workspace, or to a part of it that ``roots`` do not include, is refused, as are sockets, FIFOs and
        devices. Every refusal is listed in one ``WorkspaceError``.
        """
        try:
            return self._scan(roots)
        except OSError as exc:  # a directory that cannot be listed, a link that cannot be read
            raise WorkspaceError(f"cannot snapshot: {why(exc)}", path=str(exc.filename or self.root)) from exc

    def _scan(self, roots: Sequence[str]) -> list[ScanItem]:
        items: list[ScanItem] = []
        problems: list[str] = []
        for rel, st, empty in walk(self.root, roots):
            if stat.S_ISREG(st.st_mode):
                items.append(ScanItem(rel, "file", st))
            elif stat.S_ISDIR(st.st_mode):
                if empty:
                    items.append(ScanItem(rel, "dir", st))
            elif stat.S_ISLNK(st.st_mode):
                target, problem = self._link_target(rel, roots)
                if problem:
                    problems.append(f"{rel}: {problem}")
                else:
                    items.append(ScanItem(rel, "symlink", st, target))
            else:
                problems.append(f"{rel}: not a regular file, directory or symlink (a socket, FIFO or device)")
        if problems:
            raise WorkspaceError(f"cannot snapshot {len(problems)} path(s): " + "; ".join(problems),
                                 path=problems[0].split(":")[0], problems=problems)
        return items

    def _link_target(self, rel: str, roots: Sequence[str]) -> tuple[str, str]:
        """(target to record, "") for an acceptable symlink, else ("", why it is refused)."""
        path = self.root / rel
        target, resolved = os.readlink(path), os.path.realpath(path)
        to = Path(os.path.relpath(resolved, self.root)).parts
        if to[:1] == ("..",):
            return "", f"symlink points outside the workspace (-> {target}); copy the data in"
        if to[:1] == (STATE_DIR,) or not within("/".join(to) or ".", roots):
            return "", (f"symlink points to {'/'.join(to) or '.'}, which this snapshot does not include; add it to "
                        "the snapshot's paths")
        if os.path.isabs(target):  # a relative link keeps working wherever the snapshot is restored
            target = os.path.relpath(resolved, os.path.realpath(path.parent))
        return target, ""

    # --- locks ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, *, shared: bool = False, wait: float | None = 0.0,
             purpose: str = "") -> Iterator[None]:
        """Hold ``.stagekit/locks/<name>.lock`` (flock; released when the process dies).

        ``wait`` is how many seconds to wait for it (None: as long as it takes). An exclusive holder writes
        its pid and ``purpose`` into the file, so that a refused process can say who holds it. Taking a lock
        needs no free space, so that ``delete`` and ``gc`` can free some on a full disk: the file is empty
        when first created, and if the holder text cannot be written, the file is emptied and the holder is
        "unknown" to others. Any other failure is a ``WorkspaceError`` naming the lock file.
        """
        import fcntl  # POSIX only: imported here so that importing stagekit works everywhere

        self.ensure_state()
        path = self.locks_dir / f"{name}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            try:  # a read-only workspace or lock file: flock needs no write access
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                raise WorkspaceError(f"cannot open the lock file {str(path)!r}: {exc.strerror or exc}",
                                     path=str(path)) from exc
        try:
            op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
            deadline = None if wait is None else time.monotonic() + wait
            while not _try_flock(fd, op, block=deadline is None, path=path):
                if deadline is not None and time.monotonic() >= deadline:
                    holder = _read_holder(path)
                    raise WorkspaceLockedError(
                        f"the workspace {str(self.root)!r} is busy: another process holds {path.name} "
                        f"({holder}); try again when it is done", holder=holder)
                time.sleep(0.05)
            if not shared:
                _write_holder(fd, f"pid {os.getpid()}: {purpose}")
            yield
        finally:
            os.close(fd)


def _try_flock(fd: int, op: int, block: bool, path: Path) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, op if block else op | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:  # ENOLCK (some network filesystems), EINTR...
        raise WorkspaceError(f"cannot lock {str(path)!r}: {exc.strerror or exc}", path=str(path)) from exc


def _write_holder(fd: int, text: str) -> None:
    """Best effort: fixed width, so no truncation (which costs a journal commit on ext4) in the common case.

    Writing into a new, empty lock file needs a block; on a full disk (or over quota) it is left empty
    instead, rather than holding an earlier holder's text.
    """
    data = text.encode()[:_HOLDER].ljust(_HOLDER)
    try:
        if os.pwrite(fd, data, 0) == len(data):
            return
    except OSError:
        pass
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)


def _read_holder(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"
