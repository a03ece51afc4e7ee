"""stagekit-ray: run stagekit pipelines on Ray, with Ray Datasets as artifacts.

Importing this package imports no Ray: the executor (:class:`stagekit_ray.executor.RayExecutor`) and
:func:`stagekit_ray.data.read_returns_matrix` are imported on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RayExecutor", "read_returns_matrix"]

_LAZY = {"RayExecutor": "stagekit_ray.executor", "read_returns_matrix": "stagekit_ray.data"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stagekit_ray' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
