"""Contracts on Ray Datasets, checked batch by batch.

A Dataset is lazy: when a stage returns one, no row exists yet to check. Under the Ray executor the check
becomes part of the dataset instead: the validator answers True at once, and the artifact that flows on is
``ds.map_batches(check)``, so every batch is checked as the data streams, wherever and whenever it is
consumed. A batch that breaks the contract fails with a :class:`~stagekit.ContractError` naming the
stage, the artifact and that batch's failures (under the "warn" contract mode it warns instead).

The validator hook cannot hand back a replacement value, so the Ray executor's worker collects the
replacements (:func:`lazy_checks`) and applies them around the stage. Under any other executor a Dataset is
checked eagerly instead: streamed once, batch by batch (memory stays bounded), before the run goes on.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from stagekit import ContractError

if TYPE_CHECKING:
    import pyarrow as pa

    from stagekit import ContractChecker, Stage

__all__ = ["BatchCheck", "is_dataset", "lazy_checks", "validate_dataset"]


@attrs.define
class _Lazy:
    mode: str  # the stage's effective contract mode: "strict" or "warn"
    kwargs: dict[str, Any]  # the stage's arguments: checked input datasets replace their originals here
    outputs: dict[str, Any]  # checked output datasets, by artifact


_LAZY: contextvars.ContextVar[_Lazy | None] = contextvars.ContextVar("stagekit_ray_lazy", default=None)


@contextlib.contextmanager
def lazy_checks(checker: ContractChecker | None, stage: Stage, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """While a stage runs, check its datasets lazily; yields the output datasets replacing the originals."""
    replaced: dict[str, Any] = {}
    if checker is None:
        yield replaced
        return
    token = _LAZY.set(_Lazy(checker.mode_for(stage), kwargs, replaced))
    try:
        yield replaced
    finally:
        _LAZY.reset(token)


def is_dataset(value: Any) -> bool:
    """A Ray Dataset (decided without importing Ray when the value's class is not from ``ray.data``)."""
    if not type(value).__module__.startswith("ray.data"):
        return False
    from ray.data import Dataset

    return isinstance(value, Dataset)


def validate_dataset(
    stage: Stage, artifact: str, value: Any, schema: Any, boundary: str
) -> ContractError | bool | None:
    """The validator for a Dataset against a pandera schema (None for anything else)."""
    from stagekit import is_pandera_schema

    if not is_dataset(value) or not is_pandera_schema(schema):
        return None
    spec = BatchCheck(stage, artifact, schema, boundary)
    lazy = _LAZY.get()
    if lazy is None:
        return spec.check_all(value)
    checked = value.map_batches(functools.partial(check_batch, spec, lazy.mode), batch_format="pyarrow",
                                zero_copy_batch=True)
    # Ray Data wraps a failing batch function's error in a UserCodeException, and the ContractError would
    # not survive the trip (a pickled exception loses its __cause__): raise it as it is instead. This is the
    # dataset's own context (a copy made when it was created), not the process's.
    checked.context.raise_original_map_exception = True
    (lazy.kwargs if boundary == "input" else lazy.outputs)[artifact] = checked
    return True


@attrs.frozen
class BatchCheck:
    """One artifact's contract, applied to one batch at a time."""

    stage: Stage
    artifact: str
    schema: Any
    boundary: str

    def failure(self, batch: pa.Table) -> ContractError | None:
        """The batch's failures, or None. pandas-flavoured schemas see the batch as a DataFrame."""
        from stagekit import validate_with_pandera

        value = batch if _checks_arrow(self.schema) else batch.to_pandas()
        outcome = validate_with_pandera(self.stage, self.artifact, value, self.schema, self.boundary)
        return outcome if isinstance(outcome, ContractError) else None

    def check_all(self, dataset: Any) -> ContractError | bool:
        """Stream ``dataset`` once; the failures of the first batch that breaks the contract, else True."""
        start = 0
        for number, batch in enumerate(dataset.iter_batches(batch_format="pyarrow", batch_size=None)):
            error = self.failure(batch)
            if error is not None:
                rows = f"rows {start} to {start + batch.num_rows - 1}"
                return in_batch(error, f"batch {number} ({rows}) of the Ray Dataset")
            start += batch.num_rows
        return True


def check_batch(spec: BatchCheck, mode: str, batch: pa.Table) -> pa.Table:
    """The ``map_batches`` function: pass the batch on unchanged, or fail (warn) with its failures."""
    error = spec.failure(batch)
    if error is None:
        return batch
    error = in_batch(error, f"a batch of {batch.num_rows} rows of the Ray Dataset, checked as it streamed")
    if mode == "warn":
        from stagekit import ContractWarning

        warnings.warn(ContractWarning(str(error)), stacklevel=2)
        return batch
    raise error


def in_batch(error: ContractError, where: str) -> ContractError:
    """``error`` saying which batch it was found in (its failure-case index counts rows within the batch)."""
    return ContractError(f"{error}\n  (found in {where}; the index above is the row within the batch)",
                         stage=error.stage, artifact=error.artifact, boundary=error.boundary,
                         failures=error.failures)


def _checks_arrow(schema: Any) -> bool:
    cls = schema if isinstance(schema, type) else type(schema)
    return any(getattr(k, "__module__", "").startswith("pandera.api.pyarrow") for k in cls.__mro__)
