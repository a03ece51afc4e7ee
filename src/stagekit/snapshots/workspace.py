"""A workspace: the project directory that stagekit reads inputs from, writes runs to, and snapshots.

Layout (``docs/snapshots.md`` documents it for users)::

    <root>/
      data/                  raw inputs (yours)
      features/              derived data (yours)
      runs/<run_id>.json     one record per run, written atomically
      .stagekit/             stagekit's own state; never part of a snapshot
        objects/ab/<hash>    file contents, stored once by content hash, read-only
        snapshots/<name>.json  one manifest per snapshot
        checkouts/<name>/    read-only materialised snapshots that runs read from (+ <name>.stamp.json)
        cache/stat.json      path -> (size, mtime_ns, ctime_ns, inode, hash): unchanged files are not re-read
        locks/               flock files: write.lock (create/delete), gc.lock, checkout-<name>.lock
        tmp/                 temporary files of the snapshot being created

The workspace is ``--workspace DIR``, else ``$STAGEKIT_WORKSPACE``, else the nearest of the current directory
and its parents that holds a ``.stagekit`` directory, else the current directory.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from stagekit.atomic import atomic_write_text
from stagekit.errors import WorkspaceError, WorkspaceLockedError

if TYPE_CHECKING:
    from stagekit.snapshots.snapshot import CreateResult, DeleteResult, Progress, RestoreResult, Snapshot, VerifyReport

__all__ = [
    "ENV_VAR", "STATE_DIR", "ScanItem", "Workspace", "WorkspaceError", "WorkspaceLockedError", "check_name",
    "walk", "within",
]

ENV_VAR = "STAGEKIT_WORKSPACE"
STATE_DIR = ".stagekit"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@=-]*")
_MAX_NAME = 128
_HOLDER = 256  # bytes of "pid N: purpose" in a lock file


class ScanItem(NamedTuple):
    """One thing found under a snapshot's paths: ``kind`` is "file", "symlink" or "dir" (empty dirs only)."""

    rel: str
    kind: str
    st: os.stat_result
    target: str | None = None


def check_name(name: str, what: str, error: Callable[[str], Exception] = WorkspaceError) -> str:
    """Return ``name`` if it is safe as a file name; else raise ``error`` saying why."""
    if not name:
        raise error(f"{what} is empty")
    if "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        raise error(f"{what} {name!r} contains a path separator")
    if ".." in name:
        raise error(f"{what} {name!r} contains '..'")
    if len(name) > _MAX_NAME:
        raise error(f"{what} {name[:20]!r}... is longer than {_MAX_NAME} characters")
    if not _NAME_RE.fullmatch(name):
        raise error(f"{what} {name!r} must start with a letter or digit and use only letters, digits "
                    "and . _ + @ = -")
    return name


def within(rel: str, roots: Iterable[str]) -> bool:
    """Whether the relative path ``rel`` is one of ``roots`` or lies under one ("." holds everything)."""
    return any(r == "." or rel == r or rel.startswith(r + "/") for r in roots)


def walk(base: str | os.PathLike[str], roots: Sequence[str]) -> Iterator[tuple[str, os.stat_result, bool]]:
    """Yield (relative path, lstat, is an empty directory) for everything under ``roots`` of ``base``.

    Depth-first in sorted order, without recursion; never follows a symlink; skips ``.stagekit`` at the top
    and whatever disappears while being walked.
    """
    top = os.fspath(base)
    stack = list(reversed(roots))
    while stack:
        rel = stack.pop()
        path = top if rel == "." else f"{top}/{rel}"
        try:
            st = os.lstat(path)
            names = sorted(os.listdir(path)) if stat.S_ISDIR(st.st_mode) else []
        except (FileNotFoundError, NotADirectoryError):
            continue
        children = [n for n in names if n != STATE_DIR] if rel == "." else [f"{rel}/{n}" for n in names]
        yield rel, st, stat.S_ISDIR(st.st_mode) and not children
        stack.extend(reversed(children))


class Workspace:
    """A project directory (see the module docstring for its layout)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise WorkspaceError(f"workspace directory {str(path)!r} does not exist or is not a directory",
                                 path=str(path))
        self.root = Path(os.path.realpath(path))

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    @classmethod
    def locate(cls, explicit: str | os.PathLike[str] | None = None) -> Workspace:
        """The workspace named by ``explicit`` (``--workspace``), ``$STAGEKIT_WORKSPACE`` or the cwd."""
        for given, source in ((explicit, "--workspace"), (os.environ.get(ENV_VAR), f"${ENV_VAR}")):
            if given is not None and str(given) != "":
                path = Path(given).expanduser()
                if not path.is_dir():
                    raise WorkspaceError(f"workspace {str(path)!r} (from {source}) does not exist or is not "
                                         "a directory", path=str(path))
                return cls(path)
        cwd = Path.cwd()
        for directory in (cwd, *cwd.parents):
            if (directory / STATE_DIR).is_dir():
                return cls(directory)
        return cls(cwd)

    # --- layout --------------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """Raw inputs."""
        return self.root / "data"

    @property
    def features_dir(self) -> Path:
        """Derived data."""
        return self.root / "features"

    @property
    def runs_dir(self) -> Path:
        """One JSON record per run."""
        return self.root / "runs"

    @property
    def state_dir(self) -> Path:
        """Stagekit's own state."""
        return self.root / STATE_DIR

    @property
    def objects_dir(self) -> Path:
        """Content-addressed file store."""
        return self.state_dir / "objects"

    @property
    def packs_dir(self) -> Path:
        """Small contents, many to a file."""
        return self.state_dir / "packs"

    @property
    def snapshots_dir(self) -> Path:
        """Snapshot manifests."""
        return self.state_dir / "snapshots"

    @property
    def checkouts_dir(self) -> Path:
        """Materialised snapshots."""
        return self.state_dir / "checkouts"

    @property
    def cache_dir(self) -> Path:
        """Stat cache."""
        return self.state_dir / "cache"

    @property
    def locks_dir(self) -> Path:
        """Flock files."""
        return self.state_dir / "locks"

    @property
    def tmp_dir(self) -> Path:
        """Temporary files of a snapshot creation."""
        return self.state_dir / "tmp"

    def init(self) -> Workspace:
        """Create the documented layout (existing directories are left as they are); returns self."""
        for d in (self.data_dir, self.features_dir, self.runs_dir):
            d.mkdir(exist_ok=True)
        self.ensure_state()
        return self

    def ensure_state(self) -> None:
        """Create ``.stagekit`` and its subdirectories if missing."""
        if self.tmp_dir.is_dir():
            return
        for d in (self.objects_dir, self.packs_dir, self.snapshots_dir, self.checkouts_dir, self.cache_dir,
                  self.locks_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        ignore = self.state_dir / ".gitignore"
        if not ignore.exists():  # stagekit's state is big and local: keep it out of version control
            atomic_write_text(ignore, "*\n")

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
        rel = os.path.relpath(real, self.root)
        if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
            raise WorkspaceError(f"path {os.fspath(path)!r} is outside the workspace {str(self.root)!r}",
                                 path=os.fspath(path))
        rel = rel.replace(os.sep, "/")
        if rel == STATE_DIR or rel.startswith(STATE_DIR + "/"):
            raise WorkspaceError(f"path {os.fspath(path)!r} is inside stagekit's own state ({STATE_DIR}/)",
                                 path=os.fspath(path))
        return rel

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

        A symlink is kept as a link only if what it resolves to lies inside ``roots``; one that resolves
        outside the workspace, or to a part of it that ``roots`` do not include, is refused, as are
        sockets, FIFOs and devices. Every refusal is listed in one ``WorkspaceError``.
        """
        items: list[ScanItem] = []
        problems: list[str] = []
        for rel, st, empty in walk(self.root, roots):
            if stat.S_ISREG(st.st_mode):
                items.append(ScanItem(rel, "file", st))
            elif stat.S_ISDIR(st.st_mode):
                if empty:
                    items.append(ScanItem(rel, "dir", st))
            elif stat.S_ISLNK(st.st_mode):
                self._scan_link(self.root / rel, rel, st, roots, items, problems)
            else:
                problems.append(f"{rel}: not a regular file, directory or symlink (a socket, FIFO or device)")
        if problems:
            raise WorkspaceError(f"cannot snapshot {len(problems)} path(s): " + "; ".join(problems),
                                 path=problems[0].split(":")[0], problems=problems)
        return items

    def _scan_link(self, path: Path, rel: str, st: os.stat_result, roots: Sequence[str],
                   items: list[ScanItem], problems: list[str]) -> None:
        target = os.readlink(path)
        resolved = os.path.realpath(path)
        to = os.path.relpath(resolved, self.root).replace(os.sep, "/")
        if to == ".." or to.startswith("../"):
            problems.append(f"{rel}: symlink points outside the workspace (-> {target}); copy the data in")
        elif to.startswith(STATE_DIR + "/") or to == STATE_DIR or not within(to, roots):
            problems.append(f"{rel}: symlink points to {to}, which this snapshot does not include; "
                            "add it to the snapshot's paths")
        else:
            if os.path.isabs(target):  # a relative link keeps working wherever the snapshot is restored
                target = os.path.relpath(resolved, os.path.realpath(path.parent))
            items.append(ScanItem(rel, "symlink", st, target))

    # --- locks ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, *, shared: bool = False, wait: float | None = 0.0,
             purpose: str = "") -> Iterator[None]:
        """Hold ``.stagekit/locks/<name>.lock`` (flock; released when the process dies).

        ``wait`` is how many seconds to wait for it (None: as long as it takes). An exclusive holder writes
        its pid and ``purpose`` into the file so that a refused process can say who holds it.
        """
        self.ensure_state()
        path = self.locks_dir / f"{name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            self._acquire(fd, path, shared, wait)
            if not shared:  # fixed width: no truncation, which costs a journal commit on ext4
                os.pwrite(fd, f"pid {os.getpid()}: {purpose}".encode()[:_HOLDER].ljust(_HOLDER), 0)
            yield
        finally:
            os.close(fd)

    def _acquire(self, fd: int, path: Path, shared: bool, wait: float | None) -> None:
        import fcntl  # POSIX only: imported here so that importing stagekit works everywhere

        op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if wait is None:
            fcntl.flock(fd, op)
            return
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, op | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = path.read_text(errors="replace").strip() or "unknown"
                    raise WorkspaceLockedError(
                        f"the workspace {str(self.root)!r} is busy: another process holds {path.name} "
                        f"({holder}); try again when it is done", holder=holder) from None
                time.sleep(0.05)

    # --- runs ----------------------------------------------------------------------------------------

    def record_run(self, run_id: str, record: Mapping[str, Any]) -> Path:
        """Write ``runs/<run_id>.json`` atomically (replacing an earlier record of the same run)."""
        check_name(run_id, "run id")
        try:
            text = json.dumps(dict(record), indent=2, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise WorkspaceError(f"the record of run {run_id!r} cannot be written as JSON: {exc}") from exc
        self.runs_dir.mkdir(exist_ok=True)
        return atomic_write_text(self.runs_dir / f"{run_id}.json", text + "\n")

    # --- snapshots (implemented in stagekit.snapshots.snapshot) -------------------------------------------------

    def create_snapshot(self, name: str, paths: Iterable[str | os.PathLike[str]], *, wait: float = 0.0,
                        rehash: bool = False, progress: Callable[[Progress], None] | None = None,
                        ) -> CreateResult:
        """Snapshot ``paths`` (relative to the root, or absolute inside it) as ``name``."""
        from stagekit.snapshots import snapshot

        return snapshot.create(self, name, list(paths), wait=wait, rehash=rehash, progress=progress)

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, by name."""
        from stagekit.snapshots import snapshot

        return snapshot.list_snapshots(self)

    def snapshot(self, name: str) -> Snapshot:
        """The snapshot called ``name`` (its manifest)."""
        from stagekit.snapshots import snapshot

        return snapshot.load(self, name)

    def verify_snapshot(self, name: str, *, against: str | os.PathLike[str] | None = None,
                        progress: Callable[[Progress], None] | None = None) -> VerifyReport:
        """Re-hash the snapshot's stored files (or the files under ``against``) against its manifest."""
        from stagekit.snapshots import snapshot

        return snapshot.verify(self, name, against=against, progress=progress)

    def restore_snapshot(self, name: str, to: str | os.PathLike[str], *, hardlink: bool = False,
                         verify: bool = True, progress: Callable[[Progress], None] | None = None,
                         ) -> RestoreResult:
        """Materialise the snapshot into the new (or empty) directory ``to``."""
        from stagekit.snapshots import snapshot

        return snapshot.restore(self, name, to, hardlink=hardlink, verify=verify, progress=progress)

    def delete_snapshot(self, name: str, *, wait: float = 0.0) -> DeleteResult:
        """Delete the snapshot and every stored file no other snapshot refers to."""
        from stagekit.snapshots import snapshot

        return snapshot.delete(self, name, wait=wait)

    def gc(self, *, wait: float = 0.0) -> tuple[int, int]:
        """Remove stored contents no snapshot uses; returns (objects removed, bytes freed)."""
        from stagekit.snapshots import snapshot

        return snapshot.gc(self, wait=wait)

    def checkout(self, name: str) -> Path:
        """A read-only directory holding the snapshot's files at their workspace-relative paths."""
        from stagekit.snapshots import snapshot

        return snapshot.checkout(self, name)


def _json_default(value: object) -> object:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON-serialisable")
