"""One function over shares of work, the first share in this process and each other in a forked child.

For CPU-bound Python work that threads cannot share out: verifying thousands of small files is mostly
Python (parsing manifest lines, finding contents in packs, one hashlib call per 4 KiB, which releases and
retakes the GIL each time), and two threads took longer than one where two processes take half as long.
Forking is only safe while this process runs a single thread (no other thread can hold a lock the child
would need), which ``can_fork`` checks; otherwise run the shares here, one after another.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
from collections.abc import Callable, Sequence
from typing import TypeVar

_S = TypeVar("_S")
_R = TypeVar("_R")


def can_fork() -> bool:
    """Whether this process may fork safely: Linux, with a single thread."""
    try:
        return hasattr(os, "fork") and len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def map_shares(fn: Callable[[_S], _R], shares: Sequence[_S]) -> list[_R]:
    """``[fn(share) for share in shares]``, the first share here while forked children do the others.

    A child sends its result back pickled through a pipe. If a child fails (``fn`` raised, or it died), its
    share is done again here, so an error is raised here as it would be without forking. Interrupted, the
    children are killed. The caller checks ``can_fork`` first.
    """
    children: list[tuple[int, int]] = []  # (pid, read end of its pipe, or -1 once closed)
    try:
        for share in shares[1:]:
            children.append(_fork(fn, share))
        results = [fn(shares[0])] if shares else []
        for share in shares[1:]:
            pid, pipe = children[0]
            with os.fdopen(pipe, "rb") as f:
                children[0] = (pid, -1)
                reply = f.read()
            _, status = os.waitpid(pid, 0)
            children.pop(0)
            results.append(pickle.loads(reply) if status == 0 and reply else fn(share))
        return results
    finally:  # interrupted: stop the children still running and reap them
        for pid, pipe in children:
            if pipe >= 0:
                os.close(pipe)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _fork(fn: Callable[[_S], object], share: _S) -> tuple[int, int]:
    """Fork a child that writes ``fn(share)``, pickled, to a pipe: (pid, read end of the pipe)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        return pid, read
    status = 1
    try:  # the child: it never returns, and leaves through os._exit (no atexit, no flushing of inherited buffers)
        os.close(read)
        reply = memoryview(pickle.dumps(fn(share), pickle.HIGHEST_PROTOCOL))
        while reply:
            reply = reply[os.write(write, reply):]
        status = 0
    finally:
        os._exit(status)
