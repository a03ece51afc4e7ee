"""The run store's artifacts: values written once, by content, into the workspace's object store.

A produced value goes through its codec (:mod:`stagekit.store.codecs`) into a temporary file under
``.stagekit/tmp/runs``, is hashed, and is renamed to ``.stagekit/objects/<hh>/<sha256>`` — the object store
that snapshots use, so equal bytes are kept once whoever wrote them. A :class:`StoredArtifact` (its
fingerprint, object, codec and size) is what the run database records for it.

Objects are not fsynced one by one: a record may name an object that a power cut left incomplete, and that is
safe because an object is never used unverified — :meth:`ArtifactStore.load` hashes the bytes while the codec
reads them, and an object whose bytes no longer match its digest raises :class:`CorruptObjectError` (the
runner then runs the stage that made it again). An object already in the store has its time refreshed
instead of being written again, so that a garbage collection running meanwhile spares it
(``stagekit store gc`` keeps what was touched since the oldest running run began).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs

from stagekit.errors import CorruptObjectError, RunStoreError, StagekitError, UnstorableError
from stagekit.store.codecs import CodecTable
from stagekit.store.fingerprints import path_state, value_fingerprint

__all__ = ["ArtifactStore", "StoredArtifact"]

_BUF = 1 << 20
_names = itertools.count()


@attrs.frozen
class StoredArtifact:
    """One artifact in the store: its value's fingerprint, the object holding it, the codec that reads it."""

    fingerprint: str
    object: str  # sha256 of the object's bytes
    codec: str
    size: int
    path: bool = False  # the value is a path whose files count in the fingerprint: re-checked when reused

    def to_json(self) -> dict[str, Any]:
        data = {"fingerprint": self.fingerprint, "object": self.object, "codec": self.codec, "size": self.size}
        if self.path:
            data["path"] = True
        return data

    @classmethod
    def from_json(cls, data: Any) -> StoredArtifact | None:
        """Read back :meth:`to_json`'s data; None for anything else (not stored, or an unknown shape)."""
        if not isinstance(data, Mapping):
            return None
        try:
            return cls(str(data["fingerprint"]), str(data["object"]), str(data["codec"]), int(data["size"]),
                       bool(data.get("path", False)))
        except (KeyError, TypeError, ValueError):
            return None


class ArtifactStore:
    """The artifacts of the workspace at ``root``, written and read through ``table``'s codecs.

    Picklable (the root and the codecs' registrations): a process or Ray worker that can reach the
    workspace writes its stage's outputs itself. Safe to use from several threads and processes at once.
    """

    def __init__(self, root: str | os.PathLike[str], table: CodecTable) -> None:
        self.root = Path(root)
        self.table = table
        state = self.root / ".stagekit"
        self.objects = str(state / "objects")
        self.tmp = str(state / "tmp" / "runs")  # its own folder: a snapshot's cleanup of tmp/ never sees it
        self._made: set[str] = set()
        self._memo: dict[str, StoredArtifact] = {}  # fingerprint -> stored, this process: equal values once
        self._lock = threading.Lock()

    def __getstate__(self) -> tuple[Path, CodecTable]:
        return self.root, self.table

    def __setstate__(self, state: tuple[Path, CodecTable]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    def path(self, digest: str) -> str:
        return f"{self.objects}/{digest[:2]}/{digest}"

    # --- writing -------------------------------------------------------------------------------------

    def put_all(self, outputs: Mapping[str, Any]) -> dict[str, StoredArtifact | str]:
        """Store a stage's outputs: artifact -> what was stored, or a string saying why not ("unstorable:
        ..." for a value no codec takes, "error: ..." for a write that failed). Plain data: it travels back
        from a worker process."""
        stored: dict[str, StoredArtifact | str] = {}
        for artifact, value in outputs.items():
            try:
                stored[artifact] = self.put(value, artifact)
            except UnstorableError as exc:
                stored[artifact] = f"unstorable: {exc.reason}"
            except StagekitError as exc:  # a full disk, a codec that failed
                stored[artifact] = f"error: {exc}"
        return stored

    def put(self, value: Any, artifact: str = "") -> StoredArtifact:
        """Store ``value``; :class:`UnstorableError` if no codec takes it, :class:`RunStoreError` if the disk
        refuses (nothing half-written stays)."""
        state = path_state(value)
        fingerprint = value_fingerprint(value, self.table, state)
        is_path = state is not None
        known = self._memo.get(fingerprint)
        if known is not None and self._refresh(self.path(known.object)):
            return known
        if "" not in self._made:
            os.makedirs(self.tmp, exist_ok=True)
            self._made.add("")
        tmp = f"{self.tmp}/{os.getpid()}-{threading.get_ident()}-{next(_names)}"
        try:
            codec = self.table.write(value, tmp, atomic=False)  # a private temporary, renamed below
            digest, size = _hash_file(tmp)
            os.chmod(tmp, 0o444)  # objects are read-only
            final = self.path(digest)
            if self._refresh(final):
                os.unlink(tmp)
            else:
                if digest[:2] not in self._made:
                    os.makedirs(os.path.dirname(final), exist_ok=True)
                    self._made.add(digest[:2])
                os.replace(tmp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            what = f"artifact {artifact!r}" if artifact else "an artifact"
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT) or (exc.errno is None and _nearly_full(self.tmp))
            why = "the disk is full" if full else (exc.strerror or str(exc))
            raise RunStoreError(f"cannot store {what} in {self.objects}: {why}; the run's records and the "
                                "store stay consistent (free some space, or run with --no-cache)",
                                path=self.objects) from exc
        except BaseException:  # a codec that failed: no temporary is left behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        stored = StoredArtifact(fingerprint, digest, codec, size, is_path)
        with self._lock:
            self._memo[fingerprint] = stored
        return stored

    @staticmethod
    def _refresh(path: str) -> bool:
        """Whether ``path`` exists; if it does, its time is set to now (a running gc spares it)."""
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except PermissionError:  # someone else's object in a shared workspace: it is there
            return os.path.exists(path)
        return True

    # --- reading -------------------------------------------------------------------------------------

    def has(self, stored: StoredArtifact) -> bool:
        """Whether the object is there with its size (cheap; :meth:`load` verifies the bytes). Its time is
        refreshed: a run about to reuse it keeps a garbage collection running meanwhile from removing it."""
        path = self.path(stored.object)
        try:
            if os.stat(path).st_size != stored.size:
                return False
        except OSError:
            return False
        return self._refresh(path)

    def verify(self, stored: StoredArtifact, artifact: str = "") -> None:
        """Hash the object's bytes; :class:`CorruptObjectError` (the object removed) if they do not match."""
        path = self.path(stored.object)
        try:
            found: str | None = _hash_file(path)[0]
        except FileNotFoundError:
            raise CorruptObjectError(f"the stored object {path} of artifact {artifact!r} is missing", path=path,
                                     digest=stored.object) from None
        except OSError:
            found = None
        if found != stored.object:
            raise self._corrupt(path, f"artifact {artifact!r}" if artifact else "a stored artifact", stored, found)

    def load(self, stored: StoredArtifact, artifact: str = "") -> Any:
        """The value, read through its codec while its bytes are hashed alongside; an object whose bytes do
        not match its digest (or that is gone) raises :class:`CorruptObjectError` naming it."""
        path = self.path(stored.object)
        what = f"artifact {artifact!r}" if artifact else "a stored artifact"
        with ThreadPoolExecutor(1) as pool:  # hashing (GIL released) beside the codec's read
            hashed = pool.submit(_hash_file, path)
            try:
                value = self.table.read(path, stored.codec)
            except FileNotFoundError:
                raise CorruptObjectError(f"the stored object {path} of {what} is missing", path=path,
                                         digest=stored.object) from None
            except Exception as exc:
                found = _safe_hash(hashed)
                if found is not None and found[0] != stored.object:
                    raise self._corrupt(path, what, stored, found[0]) from exc
                raise
            found = _safe_hash(hashed)
        if found is None or found[0] != stored.object:
            raise self._corrupt(path, what, stored, None if found is None else found[0])
        return value

    @staticmethod
    def _corrupt(path: str, what: str, stored: StoredArtifact, found: str | None) -> CorruptObjectError:
        """The error for an object whose bytes are wrong, which is removed: never used, and written whole
        again by the next run of its stage (a snapshot that holds the same content gets it back then)."""
        got = "cannot be read" if found is None else f"now hash to {found[:12]}..."
        removed = ""
        with contextlib.suppress(OSError):
            os.unlink(path)
            removed = " (removed)"
        return CorruptObjectError(f"the stored object {path} of {what} is corrupt: its bytes {got}, not "
                                  f"{stored.object[:12]}...; it is not used{removed}", path=path,
                                  digest=stored.object)


def _nearly_full(folder: str) -> bool:
    """A write that failed without an errno (numpy's short write) on a disk with less than 1 MiB left."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 20)


def _safe_hash(future: Any) -> tuple[str, int] | None:
    try:
        result: tuple[str, int] = future.result()
        return result
    except OSError:
        return None


def _hash_file(path: str) -> tuple[str, int]:
    with open(path, "rb", buffering=0) as f:
        data = f.read(_BUF)
        h = hashlib.sha256(data)
        size = len(data)
        if size < _BUF:  # a small object, the usual case: one read, no buffer to set up
            return h.hexdigest(), size
        buf = bytearray(_BUF)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
            size += n
    return h.hexdigest(), size
