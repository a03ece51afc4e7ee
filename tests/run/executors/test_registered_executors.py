"""Executors come through stagekit_register_executors, the built-in ones included."""

from __future__ import annotations

from typing import Any

import pytest

import sample_stages as ss
from stagekit import ExecutorError, Host, Outcome, Pipeline, RegistrationError, Task, hookimpl
from stagekit.run.executors.sequential import SequentialExecutor


class CountingExecutor(SequentialExecutor):
    """A third-party executor: runs inline, counts what it was given."""

    name = "counting"
    submitted: list[str] = []

    def submit(self, task: Task) -> None:
        CountingExecutor.submitted.append(task.stage.name)
        assert set(task.kwargs) <= {*task.stage.requires, *task.stage.params}  # only what the stage needs
        super().submit(task)

    def wait(self) -> list[Outcome]:
        return super().wait()


class Plugin:
    @hookimpl
    def stagekit_register_executors(self, register: Any) -> None:
        register("counting", lambda workers=None, host=None, **options: CountingExecutor(workers, host))


def test_a_plugin_executor_runs_a_pipeline() -> None:
    host = Host(plugins=[("counting", Plugin())], autoload=False, env={})
    CountingExecutor.submitted.clear()
    result = Pipeline([ss.make, ss.upd_a, ss.upd_b, ss.read_d], host=host).run(executor="counting")
    assert sorted(CountingExecutor.submitted) == ["make", "read_d", "upd_a", "upd_b"]
    assert result.artifacts["d"] == {"base": 1, "a": 1, "b": 2}


def test_an_executor_name_registered_twice_names_both_plugins() -> None:
    class Again:
        @hookimpl
        def stagekit_register_executors(self, register: Any) -> None:
            register("thread", lambda **kw: None)

    host = Host(plugins=[("again", Again())], autoload=False, env={})
    with pytest.raises(RegistrationError,
                       match="executor 'thread' is registered twice: by plugin 'stagekit.executors'"):
        host.registry  # noqa: B018


def test_bad_executor_options_name_the_executor() -> None:
    with pytest.raises(ExecutorError, match="executor 'thread'"):
        Pipeline([ss.make]).run(executor="thread", executor_options={"bogus": 1})
    with pytest.raises(ExecutorError, match="workers must be at least 1"):
        Pipeline([ss.make]).run(executor="thread", workers=0)
