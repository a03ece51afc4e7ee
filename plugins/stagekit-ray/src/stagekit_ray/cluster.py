"""The Ray session of a run: use the one already open, connect to a cluster, or start a local one.

Where the address comes from, first found wins: the ``address`` option (the pipeline file's
``[executor_options]``), ``STAGEKIT_RAY_ADDRESS``, ``RAY_ADDRESS``. Without one a local cluster is started,
and :meth:`Session.close` always stops it. A local cluster writes only under its own temporary directory
(removed on close): Ray's token authentication, which by default saves a generated token in
``~/.ray/auth_token``, is given a fresh token through the environment instead (see docs/ray.md).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import shutil
import site
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from stagekit import ExecutorError

ADDRESS_VARIABLES = ("STAGEKIT_RAY_ADDRESS", "RAY_ADDRESS")
_AUTH_MODE, _AUTH_TOKEN, _AUTH_TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"


@attrs.define
class Session:
    """What this run did to get a Ray session, so that :meth:`close` undoes exactly that.

    ``owned`` is "cluster" (started here: stop it), "connection" (connected here: disconnect) or None (the
    session was open already: leave it alone).
    """

    owned: str | None
    address: str | None = None
    temp_dir: str | None = None
    keep_temp: bool = False
    saved_env: dict[str, str | None] = attrs.field(factory=dict)
    closed: bool = False
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def close(self) -> None:
        """Stop or disconnect what this session opened, restore the environment; idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        atexit.unregister(self.close)  # registered for a local cluster: done now
        if self.owned is not None:
            import ray

            ray.shutdown()
        if self.saved_env:
            _restore_env(self.saved_env)
            _refresh_ray_auth()
        if self.temp_dir is not None and not self.keep_temp:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def find_address(option: str | None, env: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """The cluster address to connect to and where it came from; (None, "") for a new local cluster."""
    env = os.environ if env is None else env
    if option:
        return option, "executor option 'address'"
    for name in ADDRESS_VARIABLES:
        if env.get(name):
            return env[name], f"environment variable {name}"
    return None, ""


def open_session(
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    runtime_env: Mapping[str, Any] | None = None,
    temp_dir: str | None = None,
    keep_temp: bool = False,
    object_store_memory: int | None = None,
    init_options: Mapping[str, Any] | None = None,
) -> Session:
    """Get a Ray session for a run (see the module docstring for the order)."""
    import ray

    if ray.is_initialized():
        return Session(owned=None)
    found, source = find_address(address)
    common: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True, **(init_options or {})}
    if runtime_env:
        common["runtime_env"] = dict(runtime_env)
    if found is not None and found != "local":
        try:
            ray.init(address=found, **common)
        except Exception as exc:
            raise ExecutorError(f"executor 'ray': cannot connect to the Ray cluster at {found!r} (from "
                                f"{source}): {type(exc).__name__}: {exc}") from exc
        return Session(owned="connection", address=found)
    return _start_local(num_cpus, temp_dir, keep_temp, object_store_memory, common)


def _start_local(num_cpus: int | None, temp_dir: str | None, keep_temp: bool,
                 object_store_memory: int | None, common: dict[str, Any]) -> Session:
    import ray

    root = temp_dir or tempfile.mkdtemp(prefix="skray-")
    saved = _prepare_local_env()
    try:
        with _system_home(root, common) as options:
            ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _temp_dir=root,
                           object_store_memory=object_store_memory, **options)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            ray.shutdown()
        _restore_env(saved)
        _refresh_ray_auth()
        if temp_dir is None:
            shutil.rmtree(root, ignore_errors=True)
        if isinstance(exc, Exception):
            raise ExecutorError(f"executor 'ray': cannot start a local Ray cluster: {type(exc).__name__}: "
                                f"{exc}") from exc
        raise
    info: dict[str, Any] = getattr(ctx, "address_info", {})
    address = info.get("gcs_address") or info.get("address")
    session = Session(owned="cluster", address=address, temp_dir=root if temp_dir is None else None,
                      keep_temp=keep_temp, saved_env=saved)
    atexit.register(session.close)  # whatever happens to its owner, the cluster and its directory go at exit
    return session


@contextlib.contextmanager
def _system_home(root: str, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """While ``ray.init`` starts the cluster's own processes, their home directory is one under ``root``.

    So whatever Ray's daemons write under ``~`` stays in the temporary directory. And it holds an empty
    ``ray_bootstrap_config.yaml``: without it Ray's usage-stats module, loaded even with the dashboard and
    usage stats off, probes cloud metadata endpoints (http://169.254.169.254, metadata.google.internal)
    to guess a cloud provider. The stages' workers get the real home back through the job's runtime_env.
    """
    home = os.path.join(root, "home")
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "ray_bootstrap_config.yaml"), "w", encoding="utf-8") as f:
        f.write("# by stagekit-ray: stops Ray probing cloud metadata endpoints (see cluster.py)\n{}\n")
    real = os.environ.get("HOME")
    options = dict(options)
    if real is not None:
        runtime_env = dict(options.get("runtime_env") or {})
        runtime_env["env_vars"] = {"HOME": real, **dict(runtime_env.get("env_vars") or {})}
        options["runtime_env"] = runtime_env
    os.environ["HOME"] = home
    try:
        yield options
    finally:
        _restore_env({"HOME": real})


def _prepare_local_env() -> dict[str, str | None]:
    """Set what a local cluster's processes inherit; returns the previous values to restore."""
    changes = {"RAY_USAGE_STATS_ENABLED": "0"}
    mode = os.environ.get(_AUTH_MODE)
    if mode is None or mode.lower() == "token":
        # Token authentication on, with a token of this cluster's own held only in the environment of the
        # driver and the cluster's processes: Ray would otherwise generate one into ~/.ray/auth_token.
        changes[_AUTH_MODE] = "token"
        if not (os.environ.get(_AUTH_TOKEN) or os.environ.get(_AUTH_TOKEN_PATH)):
            changes[_AUTH_TOKEN] = secrets.token_hex(32)
    extra = _driver_paths()
    if extra:  # workers import stage functions by module name: give them the driver's import path
        changes["PYTHONPATH"] = os.pathsep.join([*extra, *filter(None, [os.environ.get("PYTHONPATH")])])
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    _refresh_ray_auth()
    return saved


def _driver_paths() -> list[str]:
    """Directories on the driver's ``sys.path`` that a fresh interpreter would not have."""
    standard = {os.path.realpath(p) for p in [sys.prefix, sys.base_prefix, sys.exec_prefix]}
    standard |= {os.path.realpath(p) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    listed = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    extra = []
    for entry in sys.path:
        real = os.path.realpath(entry) if entry else ""
        if (not entry or entry in listed or not os.path.isdir(entry)
                or any(real == s or real.startswith(s + os.sep) for s in standard)):
            continue
        if entry not in extra:
            extra.append(entry)
    return extra


def _restore_env(saved: Mapping[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _refresh_ray_auth() -> None:
    """Make this process's Ray re-read its authentication settings from the environment.

    Ray caches the mode and the token per process; without this a second local cluster in the same process
    (with its own token) would be refused, and a user's later ``ray.init()`` would see our settings.
    """
    import importlib

    raylet = importlib.import_module("ray._raylet")
    config, loader = getattr(raylet, "Config", None), getattr(raylet, "AuthenticationTokenLoader", None)
    if config is None or loader is None:  # a Ray without token authentication: nothing cached
        return
    config.initialize("")
    loader.instance().reset_cache()
