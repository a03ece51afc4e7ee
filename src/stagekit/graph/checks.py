"""Every static check of a pipeline, in one place: ``stagekit check``, ``Pipeline.check`` and the check that
``Pipeline.run`` makes before any stage starts all call :func:`validate`, so they refuse exactly the same.

Beyond the DAG (built and checked in :mod:`stagekit.graph.dag`): the run's settings (contract modes, the
executor, its options), params against what each stage accepts, each stage's function against what it
requires, merges for concurrent updaters, and contract compatibility between producers and consumers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from stagekit._text import unknown_name
from stagekit.errors import (
    ContractError,
    ContractWarning,
    ExecutorError,
    PipelineError,
    PipelineWarning,
    StageDefinitionError,
    StagekitError,
)
from stagekit.graph.dag import Dag
from stagekit.graph.plan import Merged, plan_versions
from stagekit.stage import CONTRACT_MODES, Stage, resolve_reference, timeout_problem

if TYPE_CHECKING:
    from stagekit.contracts.checker import ContractChecker
    from stagekit.plugins.host import Host


@attrs.frozen
class RunSettings:
    """How a pipeline is to be run: what the check validates besides the DAG itself."""

    executor: str = "sequential"
    workers: int | None = None
    contracts: str = "strict"
    stage_contracts: Mapping[str, str] = attrs.field(factory=dict)
    params: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    executor_options: Mapping[str, Any] = attrs.field(factory=dict)
    timeout: float | None = None  # the run's, in seconds
    stage_timeouts: Mapping[str, float] = attrs.field(factory=dict)  # stage name -> seconds


@attrs.define
class Validation:
    """What the check found: ``problems`` refuse the run; ``warnings`` are reported and the run goes on.

    Each problem has a kind ("pipeline", "executor" or "contracts"): a refused run raises the error of its
    first problem's kind (``PipelineError``, ``ExecutorError``, ``ContractError``) listing every problem."""

    found: list[tuple[str, str]] = attrs.field(factory=list)
    warnings: list[Warning] = attrs.field(factory=list)

    @property
    def problems(self) -> list[str]:
        return [message for _, message in self.found]

    @property
    def ok(self) -> bool:
        return not self.found

    def add(self, kind: str, messages: list[str]) -> None:
        self.found += [(kind, m) for m in messages]

    def error(self) -> StagekitError:
        """The error that refuses a run with these problems (nothing has run): that of their kind, or a
        ``PipelineError`` for problems of several kinds; its message lists every problem."""
        problems = self.problems
        text = problems[0] if len(problems) == 1 else (
            f"{len(problems)} problems; nothing was run:\n  - " + "\n  - ".join(problems))
        kinds = {kind for kind, _ in self.found}
        if kinds == {"contracts"}:
            return ContractError("contracts disagree between stages; nothing was run:\n  " + "\n  ".join(problems),
                                 failures=problems)
        if kinds == {"executor"} and len(problems) == 1:
            return ExecutorError(text)
        return PipelineError(text, problems)


def validate(dag: Dag, host: Host, settings: RunSettings) -> Validation:
    """Every static check of ``dag`` run with ``settings`` (the DAG itself is valid by now)."""
    found = Validation()
    found.add("executor", executor_problems(host, settings))
    found.add("pipeline", setting_problems(dag, settings))
    found.add("pipeline", param_problems(dag, settings.params))
    found.add("pipeline", signature_problems(dag))
    found.add("executor", travel_problems(dag, settings))
    found.add("pipeline", merge_problems(dag, host, found.warnings))
    if found.ok:  # the contract checker needs valid modes, and stages it can import
        checker = contract_checker(dag, host, settings.contracts, settings.stage_contracts)
        if checker is not None:
            refused, warned = checker.static_findings(dag.producer_edges(), host.hook.stagekit_check_compatible)
            found.add("contracts", refused)
            found.warnings += [ContractWarning(w) for w in warned]
    return found


# --- settings and the executor ---------------------------------------------------------------------------


def setting_problems(dag: Dag, settings: RunSettings) -> list[str]:
    modes = ", ".join(CONTRACT_MODES)
    problems = []
    if settings.contracts not in CONTRACT_MODES:
        problems.append(f"contracts must be one of {modes}, not {settings.contracts!r}")
    for name, mode in settings.stage_contracts.items():
        if name not in dag.stages:
            problems.append(unknown_name("stage", name, dag.stages) + " in the per-stage contract modes")
        elif mode not in CONTRACT_MODES:
            problems.append(f"the contract mode of stage {name!r} must be one of {modes}, not {mode!r}")
    if settings.timeout is not None and (problem := timeout_problem(settings.timeout)) is not None:
        problems.append(f"the run's timeout {problem}")
    for name, seconds in settings.stage_timeouts.items():
        if name not in dag.stages:
            problems.append(unknown_name("stage", name, dag.stages) + " in the per-stage timeouts")
        elif (problem := timeout_problem(seconds)) is not None:
            problems.append(f"the timeout of stage {name!r} {problem}")
    return problems


def executor_problems(host: Host, settings: RunSettings) -> list[str]:
    factories = host.registry.executors
    name = settings.executor
    if name not in factories:
        return [unknown_name("executor", name, factories) + f"; available: {', '.join(sorted(factories))}"
                + host.missing_plugin_hint(name)]
    problems = []
    if settings.workers is not None and settings.workers < 1:
        problems.append(f"workers must be at least 1, not {settings.workers}")
    accepted = _keyword_names(factories[name])
    if accepted is not None:
        origin = host.registry.executor_origins[name]
        for option in settings.executor_options:
            if option not in accepted - {"workers", "host"}:
                known = sorted(accepted - {"workers", "host"})
                problems.append(f"{unknown_name('option', option, known)} for executor {name!r} ({origin}); "
                                f"its options: {', '.join(known) or '(none)'}")
    return problems


# --- params and signatures -------------------------------------------------------------------------------


def param_problems(dag: Dag, params: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Params for stages that are not in the pipeline, and keys a stage does not take."""
    problems = []
    for name, values in params.items():
        if name in dag.stages:
            problems += _unknown_keys(dag.stages[name], values)
            continue
        message = unknown_name("stage", name, dag.stages) + " in params"
        split = [f"{name}.{key}" for key, v in values.items()
                 if isinstance(v, Mapping) and f"{name}.{key}" in dag.stages]
        if split:  # TOML read [params.my.stage] as nested tables
            message += f"; a stage name with dots must be quoted in TOML: [params.\"{split[0]}\"]"
        problems.append(message)
    return problems


def _unknown_keys(stage: Stage, values: Mapping[str, Any]) -> list[str]:
    try:
        accepted = _keyword_names(stage.callable)
    except StageDefinitionError:
        return []  # reported by signature_problems
    if accepted is None:  # the function takes **kwargs: any param is accepted
        return []
    takes = (accepted | set(stage.params)) - set(stage.requires)
    return [f"stage {stage.name!r} has no param {key!r}" + _close(key, takes) +
            f"; its params: {', '.join(sorted(takes)) or '(none)'}" for key in values if key not in takes]


def signature_problems(dag: Dag) -> list[str]:
    """Each stage's function against what it is passed: lazy ``"module:attr"`` stages are imported here."""
    from stagekit.stage import _check_signature

    problems = []
    for name, stage in dag.stages.items():
        try:
            func = stage.callable
            if isinstance(stage.func, str):  # functions were checked when the stage was declared
                _check_signature(name, func, [*stage.requires, *stage.params])
        except StageDefinitionError as exc:
            problems.append(str(exc))
    return problems


IN_PROCESS_EXECUTORS = ("sequential", "thread")


def travel_problems(dag: Dag, settings: RunSettings) -> list[str]:
    """Under an executor that runs stages in other processes, each stage and its params must travel there
    (cloudpickle, as the process and Ray executors send them). Artifacts are checked as they are sent."""
    if settings.executor in IN_PROCESS_EXECUTORS:
        return []
    import cloudpickle  # type: ignore[import-untyped]  # only for executors that need it

    problems = []
    for name, stage in dag.stages.items():
        params = {**stage.params, **settings.params.get(name, {})}
        for what, value in (("the stage", stage), ("its params", params)):
            try:
                cloudpickle.dumps(value)
            except Exception as exc:
                problems.append(f"stage {name!r} cannot be sent to a worker of executor {settings.executor!r}: "
                                f"{what} cannot be serialized ({type(exc).__name__}: {exc}); use the thread "
                                "executor")
                break
    return problems


def _keyword_names(func: Callable[..., Any]) -> set[str] | None:
    """The names ``func`` takes by keyword, or None if it takes any (``**kwargs``) or cannot be inspected."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _close(name: str, known: set[str]) -> str:
    hint = unknown_name("", name, known)
    return hint[hint.index(" (did") :] if " (did" in hint else ""


# --- merges ---------------------------------------------------------------------------------------------


def concurrent_writers(dag: Dag) -> dict[str, list[tuple[str, ...]]]:
    """artifact -> each set of concurrent writers that some stage (or the end of the run) sees merged."""
    plan = dag.plan if dag.plan is not None else plan_versions(dag)
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


def merge_problems(dag: Dag, host: Host, warned: list[Warning]) -> list[str]:
    """Concurrent updaters of an artifact whose declared type has no merge (a problem), or only the catch-all
    merge for ``object`` (a warning added to ``warned``: field by field may not be what the type wants)."""
    problems: list[str] = []
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
        type_label = getattr(declared, "__qualname__", str(declared))
        for writers in groups:
            by = ", ".join(map(repr, writers))
            if not table.supports(declared):
                problems.append(
                    f"artifact {artifact!r} is updated concurrently by {by}, but its declared type {type_label} has "
                    "no merge: register one with stagekit_register_merges, or order the stages with after=[...]")
            elif _only_catch_all(table, declared):
                warned.append(PipelineWarning(
                    f"artifact {artifact!r} is updated concurrently by {by}; its type {type_label} has no merge "
                    "of its own, so the built-in catch-all merges it field by field: register a merge for it if "
                    "that is not what it needs"))
    return problems


def _only_catch_all(table: Any, declared: Any) -> bool:
    reg = table.lookup(declared)
    return reg is not None and reg.value_type is object and not hasattr(declared, "__stagekit_merge__")


def _declared_type(dag: Dag, artifact: str) -> Any:
    role = dag.roles[artifact]
    for name in [*role.writers, *role.readers]:
        if name and artifact in dag.stages[name].types:
            return dag.stages[name].types[artifact]
    return None


# --- contracts ------------------------------------------------------------------------------------------


def contract_checker(dag: Dag, host: Host, mode: str, stage_modes: Mapping[str, str]) -> ContractChecker | None:
    """The checker for a run, or None when no stage declares a contract (nothing imported, nothing paid)."""
    if mode == "off" or not any(s.inputs or s.outputs for s in dag.stages.values()):
        return None
    from stagekit.contracts.checker import ContractChecker

    # warnings travel back on each stage's outcome and are issued in the driver, under every executor
    return ContractChecker(host.hook.stagekit_validate_artifact, mode, dict(stage_modes), emit_warnings=False,
                           host=host.spec())
