"""Selecting stages by name, tag, or targets and everything upstream."""

from __future__ import annotations

from typing import Any

import pytest

from stagekit import PipelineError, stage
from stagekit.graph.select import select_stages
from stagekit.plugins.registry import Provenance, Registry


def noop(**kw: Any) -> None:
    return None


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    origin = Provenance("p")
    for s in [
        stage(noop, name="fetch", requires=["workspace"], provides=["raw"], tags=["demo"]),
        stage(noop, name="clean", requires=["raw"], provides=["prices"]),
        stage(noop, name="fix", requires=["prices"], provides=["prices"]),
        stage(noop, name="tidy", requires=["prices"], provides=["prices"]),
        stage(noop, name="report", requires=["prices"], provides=["out"], after=["audit"]),
        stage(noop, name="audit", provides=["log"]),
        stage(noop, name="other", provides=["x"], tags=["misc"]),
    ]:
        reg.add_stage(s, origin)
    return reg


def names(stages: list[Any]) -> list[str]:
    return sorted(s.name for s in stages)


def test_a_target_pulls_in_everything_upstream(registry: Registry) -> None:
    assert names(select_stages(registry.stages, targets=["report"])) == [
        "audit", "clean", "fetch", "fix", "report", "tidy"]


def test_an_updater_target_pulls_in_the_creator_but_not_its_concurrent_siblings(registry: Registry) -> None:
    assert names(select_stages(registry.stages, targets=["fix"])) == ["clean", "fetch", "fix"]


def test_upstream_stops_at_given_artifacts(registry: Registry) -> None:
    assert names(select_stages(registry.stages, targets=["report"], given=["raw"])) == [
        "audit", "clean", "fix", "report", "tidy"]


def test_names_and_tags_select_exactly(registry: Registry) -> None:
    assert names(select_stages(registry.stages, names=["other"], tags=["demo"])) == ["fetch", "other"]
    assert len(select_stages(registry.stages)) == 7


def test_unknown_names_and_tags_suggest_close_ones(registry: Registry) -> None:
    with pytest.raises(PipelineError) as err:
        select_stages(registry.stages, names=["repot"], tags=["dmeo"])
    assert "unknown stage 'repot' (did you mean 'report'?)" in err.value.problems
    assert "unknown tag 'dmeo' (did you mean 'demo'?)" in err.value.problems


def test_of_two_alternative_sources_the_one_whose_inputs_are_given_is_chosen(registry: Registry) -> None:
    registry.add_stage(stage(noop, name="load_prices", requires=["prices_file"], provides=["prices"]),
                       Provenance("bulk"))
    assert names(select_stages(registry.stages, targets=["report"], given=["workspace"])) == [
        "audit", "clean", "fetch", "fix", "report", "tidy"]
    assert names(select_stages(registry.stages, targets=["report"], given=["prices_file"])) == [
        "audit", "fix", "load_prices", "report", "tidy"]


# --- plugins that never heard of each other ----------------------------------------------------------------


def two_plugins() -> tuple[Registry, dict[str, str]]:
    reg = Registry()
    weather, backtest = Provenance("weather"), Provenance("backtest")
    for s, origin in [
        (stage(noop, name="fetch_weather", provides=["readings"]), weather),
        (stage(noop, name="evaluate", requires=["readings"], provides=["metrics"]), weather),
        (stage(noop, name="forecast_report", requires=["metrics"], provides=["report"]), weather),
        (stage(noop, name="run_backtest", provides=["equity"]), backtest),
        (stage(noop, name="summarize_backtest", requires=["equity"], provides=["metrics"]), backtest),
        (stage(noop, name="backtest_report", requires=["metrics"], provides=["tearsheet"]), backtest),
    ]:
        reg.add_stage(s, origin)
    return reg, {n: o.plugin for n, o in reg.stage_origins.items()}


def test_a_target_takes_the_creator_of_its_own_plugin_where_two_plugins_create_an_artifact() -> None:
    reg, plugin_of = two_plugins()
    assert names(select_stages(reg.stages, targets=["forecast_report"], plugin_of=plugin_of)) == [
        "evaluate", "fetch_weather", "forecast_report"]
    assert names(select_stages(reg.stages, targets=["backtest_report"], plugin_of=plugin_of)) == [
        "backtest_report", "run_backtest", "summarize_backtest"]


def test_an_ambiguity_that_remains_names_both_creators_and_how_to_choose() -> None:
    reg, plugin_of = two_plugins()
    reg.add_stage(stage(noop, name="dashboard", requires=["metrics"], provides=["page"]), Provenance("ui"))
    plugin_of["dashboard"] = "ui"
    with pytest.raises(PipelineError) as err:
        select_stages(reg.stages, targets=["dashboard"], plugin_of=plugin_of)
    message = str(err.value)
    assert "artifact 'metrics' needed upstream has several creators" in message
    assert "stage 'evaluate' (plugin 'weather')" in message
    assert "stage 'summarize_backtest' (plugin 'backtest')" in message
    assert "plugins = [...]" in message
    chosen = select_stages(reg.stages, targets=["dashboard"], plugin_of=plugin_of, plugins=["weather"])
    assert names(chosen) == ["dashboard", "evaluate", "fetch_weather"]
