"""The ``ray`` plugin: registers the ``ray`` executor and validates Ray Datasets against contracts.

Importing this module imports no Ray (nor pandas): registering costs nothing for users who never pick
the ``ray`` executor; the executor module is imported by the factory, the dataset validator only for a
value whose class comes from ``ray.data`` (so Ray is already imported by then).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stagekit import hookimpl

if TYPE_CHECKING:
    from stagekit import ContractError, Stage
    from stagekit_ray.executor import RayExecutor


def make_executor(workers: int | None = None, host: Any = None, **options: Any) -> RayExecutor:
    """The ``ray`` executor's factory: ``options`` are the pipeline file's ``[executor_options]``."""
    from stagekit_ray.executor import RayExecutor

    return RayExecutor(workers=workers, host=host, **options)


@hookimpl
def stagekit_register_executors(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("ray", make_executor)


@hookimpl
def stagekit_validate_artifact(
    stage: Stage, artifact: str, value: Any, schema: Any, boundary: str
) -> ContractError | bool | None:
    """Ray Datasets: checked batch by batch as they stream (see :mod:`stagekit_ray.datasets`)."""
    if not type(value).__module__.startswith("ray.data"):
        return None
    from stagekit_ray.datasets import validate_dataset

    return validate_dataset(stage, artifact, value, schema, boundary)

