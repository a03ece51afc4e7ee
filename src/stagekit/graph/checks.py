"""Static validation beyond the DAG: merges for concurrent updaters, and contract compatibility.

Everything here runs before any stage does (``stagekit check``, and every ``Pipeline.run``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stagekit.errors import ContractError
from stagekit.graph.dag import Dag
from stagekit.graph.plan import Merged, plan_versions
from stagekit.stage import resolve_reference

if TYPE_CHECKING:
    from stagekit.plugins.host import Host
    from stagekit.records import Checker


def static_problems(
    dag: Dag, host: Host, contracts: str = "strict", stage_contracts: Mapping[str, str] | None = None
) -> list[str]:
    problems = merge_problems(dag, host)
    checker = contract_checker(dag, host, contracts, stage_contracts or {})
    if checker is not None:
        problems += checker.check_static(dag.producer_edges(), host.hook.stagekit_check_compatible)  # type: ignore[attr-defined]
    return problems


def concurrent_writers(dag: Dag) -> dict[str, list[tuple[str, ...]]]:
    """artifact -> each set of concurrent writers that some stage (or the end of the run) sees merged."""
    plan = plan_versions(dag)
    found: dict[str, list[tuple[str, ...]]] = {}
    versions = [(a, v) for inputs in plan.inputs.values() for a, v in inputs]
    versions += [(a, v) for a in dag.roles if (v := plan.final(a)) is not None]
    for artifact, version in versions:
        todo = [version]
        while todo:
            v = todo.pop()
            if isinstance(v, Merged):
                if v.writers not in found.setdefault(artifact, []):
                    found[artifact].append(v.writers)
                todo.append(v.base)
    return found


def merge_problems(dag: Dag, host: Host) -> list[str]:
    """Concurrent updaters of an artifact whose declared type has no merge."""
    problems = []
    table = host.registry.merge_table
    for artifact, groups in sorted(concurrent_writers(dag).items()):
        declared = _declared_type(dag, artifact)
        if declared is None:
            continue
        if isinstance(declared, str):
            try:
                declared = resolve_reference(declared)
            except Exception as exc:
                problems.append(f"artifact {artifact!r}: cannot import its declared type {declared!r}: {exc}")
                continue
        if not table.supports(declared):
            for writers in groups:
                problems.append(
                    f"artifact {artifact!r} is updated concurrently by {', '.join(map(repr, writers))}, but its "
                    f"declared type {getattr(declared, '__qualname__', declared)} has no merge: register one "
                    "with stagekit_register_merges, or order the stages with after=[...]"
                )
    return problems


def _declared_type(dag: Dag, artifact: str) -> Any:
    role = dag.roles[artifact]
    for name in [*role.writers, *role.readers]:
        if name and artifact in dag.stages[name].types:
            return dag.stages[name].types[artifact]
    return None


def refuse_incompatible(dag: Dag, host: Host, checker: Any) -> None:
    """Refuse a run whose producers and consumers disagree, honouring each consumer's contract mode."""
    problems = checker.check_static(dag.producer_edges(), host.hook.stagekit_check_compatible)
    if problems:
        raise ContractError(
            "contracts disagree between stages; nothing was run:\n  " + "\n  ".join(problems),
            failures=problems,
        )


def contract_checker(dag: Dag, host: Host, mode: str, stage_modes: Mapping[str, str]) -> Checker | None:
    """The checker for a run, or None when no stage declares a contract (nothing imported, nothing paid)."""
    if mode == "off" or not any(s.inputs or s.outputs for s in dag.stages.values()):
        return None
    from stagekit.contracts.checker import ContractChecker

    # warnings travel back on each stage's outcome and are issued in the driver, under every executor
    checker: Checker = ContractChecker(host.hook.stagekit_validate_artifact, mode, dict(stage_modes),
                                       emit_warnings=False, host=host.spec())
    return checker
