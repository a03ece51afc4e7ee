"""Static checks before any stage runs: merges for concurrent updaters, contract compatibility."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from stagekit import ContractError, Host, Pipeline, PipelineWarning, StagekitError, hookimpl, stage


class Plain:
    """A value type with no merge at all."""

    def __init__(self, n: int) -> None:
        self.n = n


def make() -> Plain:
    return Plain(0)


def bump(box: Plain) -> Plain:
    return Plain(box.n + 1)


def stages(declared: Any) -> list[Any]:
    return [
        stage(make, name="make", provides=["box"], types={"box": declared}),
        stage(bump, name="left", requires=["box"], provides=["box"], types={"box": declared}),
        stage(bump, name="right", requires=["box"], provides=["box"], types={"box": declared}),
    ]


def test_concurrent_updaters_of_a_type_without_merge_are_found_statically() -> None:
    problems = Pipeline(stages(Plain)).check()
    assert len(problems) == 1
    assert "artifact 'box' is updated concurrently by 'left', 'right'" in problems[0]
    assert "Plain has no merge" in problems[0]


def test_a_lazily_declared_type_is_resolved_for_the_check() -> None:
    problems = Pipeline(stages(f"{__name__}:Plain")).check()
    assert problems and "Plain has no merge" in problems[0]
    assert "cannot import" in Pipeline(stages("nowhere_xyz:Plain")).check()[0]


def test_a_registered_merge_satisfies_the_check_and_the_run() -> None:
    class Merges:
        @hookimpl
        def stagekit_register_merges(self, register: Any) -> None:
            register(Plain, lambda base, branches: Plain(base.n + sum(b.n - base.n for b in branches)))

    pipeline = Pipeline(stages(Plain), host=Host(plugins=[("merges", Merges())], autoload=False, env={}))
    assert pipeline.check() == []
    assert pipeline.run().artifacts["box"].n == 2


def test_ordered_updaters_need_no_merge() -> None:
    ordered = stages(Plain)
    ordered[2] = ordered[2].evolve(after=["left"])
    assert Pipeline(ordered).check() == []


def test_incompatible_contracts_are_refused_before_any_stage_runs() -> None:
    pa = pytest.importorskip("pandera.pandas")
    import pandas as pd

    ran: list[str] = []

    def produce() -> pd.DataFrame:
        ran.append("produce")
        return pd.DataFrame({"close": [1.0]})

    def consume(prices: pd.DataFrame) -> int:
        ran.append("consume")
        return len(prices)

    promised = pa.DataFrameSchema({"close": pa.Column(float)})
    needed = pa.DataFrameSchema({"close": pa.Column(float), "volume": pa.Column(float)})
    pipeline = Pipeline([
        stage(produce, provides=["prices"], outputs={"prices": promised}),
        stage(consume, requires=["prices"], provides=["n"], inputs={"prices": needed}),
    ])
    problems = pipeline.check()
    assert any("'volume'" in p and "produce" in p and "consume" in p for p in problems)
    with pytest.raises(ContractError, match="nothing was run"):
        pipeline.run()
    assert ran == []
    assert pipeline.run(contracts="off").artifacts["n"] == 1  # off: nothing checked


# --- one validation: run refuses exactly what check reports, before any stage starts --------------------


class Ran:
    """Records which stages ran: a refused run must record none."""

    def __init__(self) -> None:
        self.names: list[str] = []

    @hookimpl
    def stagekit_before_stage(self, run: Any, stage: Any) -> None:
        self.names.append(stage.name)


def refused_alike(stages_: list[Any], artifacts: dict[str, Any] | None = None, **settings: Any) -> list[str]:
    """The problems ``check`` reports; ``run`` with the same settings raises them, and no stage starts."""
    ran = Ran()
    pipeline = Pipeline(stages_, host=Host.isolated(ran))
    problems = pipeline.check(artifacts or {}, **settings)
    assert problems
    with pytest.raises(StagekitError) as refused:
        pipeline.run(artifacts, **settings)
    assert all(p in str(refused.value) or p in getattr(refused.value, "problems", []) for p in problems)
    assert ran.names == []
    return problems


def load_data() -> int:
    return 1


def split(data: int, test_size: float = 0.2, random_state: int = 3) -> int:
    return data


SPLIT = [stage(load_data, provides=["data"]), stage(split, requires=["data"], provides=["parts"])]


def test_a_misspelt_param_names_the_stage_the_key_and_close_matches() -> None:
    (problem,) = refused_alike(SPLIT, params={"split": {"test_sise": 0.3}})
    assert problem.startswith("stage 'split' has no param 'test_sise' (did you mean 'test_size'?)")
    assert "its params: random_state, test_size" in problem


def test_params_for_a_stage_not_in_the_pipeline_are_refused() -> None:
    (problem,) = refused_alike(SPLIT, params={"spilt": {"test_size": 0.3}})
    assert "unknown stage 'spilt' (did you mean 'split'?) in params" in problem


def test_a_dotted_stage_name_that_toml_split_gets_a_hint_to_quote_it() -> None:
    dotted = [stage(load_data, name="etl.load", provides=["data"])]
    (problem,) = refused_alike(dotted, params={"etl": {"load": {"n": 1}}})
    assert "a stage name with dots must be quoted in TOML: [params.\"etl.load\"]" in problem


def test_a_stage_taking_any_keyword_accepts_any_param() -> None:
    def anything(**kwargs: Any) -> int:
        return len(kwargs)

    assert Pipeline([stage(anything, provides=["n"])]).check(params={"anything": {"x": 1}}) == []


def test_a_lazy_stage_whose_function_does_not_take_its_requires_is_refused() -> None:
    lazy = stage("checks_lazy:scale", name="scale", requires=["frame", "factr"], provides=["scaled"])
    (problem,) = refused_alike([stage(load_data, provides=["frame"]), stage(load_data, name="f", provides=["factr"]),
                                lazy])
    assert "stage 'scale'" in problem and "'factr'" in problem


def test_a_lazy_stage_that_cannot_be_imported_is_refused() -> None:
    lazy = stage("checks_missing_module:scale", name="scale", provides=["scaled"])
    (problem,) = refused_alike([lazy])
    assert "stage 'scale': cannot import 'checks_missing_module:scale'" in problem


def test_a_type_without_merge_refuses_the_run_too() -> None:
    (problem,) = refused_alike(stages(Plain))
    assert "Plain has no merge" in problem


def test_an_unknown_executor_and_bad_workers_are_refused_by_check_too() -> None:
    assert "unknown executor 'thraed' (did you mean 'thread'?)" in refused_alike(SPLIT, executor="thraed")[0]
    assert refused_alike(SPLIT, workers=0) == ["workers must be at least 1, not 0"]


def test_an_executor_option_typo_names_the_executor_the_option_and_close_matches() -> None:
    (problem,) = refused_alike(SPLIT, executor="process", executor_options={"start_methd": "spawn"})
    assert problem.startswith("unknown option 'start_methd' (did you mean 'start_method'?) for executor 'process'")
    assert "its options: start_method" in problem


def test_every_problem_is_reported_at_once() -> None:
    problems = refused_alike(SPLIT, params={"split": {"test_sise": 1}}, workers=0, contracts="loud")
    assert len(problems) == 3


@attrs.frozen
class Counts:
    a: int = 0
    b: int = 0


def test_concurrent_updaters_merged_only_by_the_catch_all_are_a_warning_naming_the_type() -> None:
    def start() -> Counts:
        return Counts()

    def add_a(counts: Counts) -> Counts:
        return attrs.evolve(counts, a=1)

    def add_b(counts: Counts) -> Counts:
        return attrs.evolve(counts, b=2)

    typed = {"types": {"counts": Counts}}
    pipeline = Pipeline([stage(start, provides=["counts"], **typed),
                         stage(add_a, requires=["counts"], provides=["counts"], **typed),
                         stage(add_b, requires=["counts"], provides=["counts"], **typed)])
    found = pipeline.validate()
    assert found.ok and len(found.warnings) == 1 and isinstance(found.warnings[0], PipelineWarning)
    assert "its type Counts has no merge of its own" in str(found.warnings[0])
    with pytest.warns(PipelineWarning, match="Counts has no merge of its own"):
        assert pipeline.run().artifacts["counts"] == Counts(1, 2)


def test_a_param_that_cannot_travel_is_refused_before_a_process_run() -> None:
    import threading

    lock = threading.Lock()
    (problem,) = refused_alike(SPLIT, executor="process", params={"split": {"random_state": lock}})
    assert problem.startswith("stage 'split' cannot be sent to a worker of executor 'process': its params cannot")
    assert Pipeline(SPLIT).check(executor="thread", params={"split": {"random_state": lock}}) == []
