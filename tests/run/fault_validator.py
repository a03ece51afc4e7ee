"""A contract-validator plugin (a module: process workers rebuild it by name) that crashes on its schema."""

from __future__ import annotations

from typing import Any

from stagekit import hookimpl


class CrashSchema:
    """The schema kind this validator claims, and then fails to check."""


@hookimpl
def stagekit_validate_artifact(stage: Any, artifact: str, value: Any, schema: Any, boundary: str) -> Any:
    if isinstance(schema, CrashSchema):
        raise SystemExit("the validator quits")
    return None
