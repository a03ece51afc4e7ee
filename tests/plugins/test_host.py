"""Host behaviour with plugins passed in code (real entry points are in tests/integration)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

import sample_stages as ss
from stagekit import Host, PluginConfigError, PluginError, RegistrationError, hookimpl, stage


def module(name: str, **attrs: Any) -> ModuleType:
    mod = ModuleType(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod


def registers(*stages: Any) -> Any:
    @hookimpl
    def stagekit_register_stages(register: Any) -> None:
        for s in stages:
            register(s)

    return stagekit_register_stages


def test_builtins_register_through_the_same_hooks() -> None:
    host = Host(autoload=False, env={})
    builtins = [r for r in host.records if r.distribution == "stagekit"]
    assert [r.name for r in builtins] == ["stagekit.executors", "stagekit.merges", "stagekit.contracts",
                                          "stagekit.codecs", "stagekit.formats"]
    assert all(r.status == "loaded" for r in builtins)
    # installed plugins are listed, but not loaded, when autoload is off
    assert all(r.status == "disabled" for r in host.records if r.distribution != "stagekit")
    assert {"sequential", "thread", "process"} <= set(host.registry.executors)
    assert host.registry.executor_origins["thread"].plugin == "stagekit.executors"


def test_plugins_in_code_register_stages_with_provenance() -> None:
    host = Host(plugins=[module("acme", stagekit_register_stages=registers(ss.make))], autoload=False, env={})
    assert host.registry.stages["make"] is ss.make
    assert host.registry.origin("make").plugin == "acme"
    assert host.record("acme").stages == ["make"]


def test_a_plugin_failing_to_register_is_recorded_and_the_rest_load() -> None:
    def broken(register: Any) -> None:
        raise RuntimeError("cannot reach the vendor")

    host = Host(plugins=[module("bad", stagekit_register_stages=broken),
                         module("good", stagekit_register_stages=registers(ss.make))], autoload=False, env={})
    bad = host.record("bad")
    assert bad.status == "failed" and "cannot reach the vendor" in (bad.error or "")
    assert host.record("good").status == "loaded" and "make" in host.registry.stages
    with pytest.raises(PluginError, match="plugin 'bad'.*cannot reach the vendor"):
        Host(plugins=[module("bad", stagekit_register_stages=broken)], autoload=False, env={}, strict=True)


def test_a_misspelt_hook_is_an_error_even_without_the_marker() -> None:
    def stagekit_register_stage(register: Any) -> None:
        return None

    host = Host(plugins=[module("typo", stagekit_register_stage=stagekit_register_stage)], autoload=False, env={})
    rec = host.record("typo")
    assert rec.status == "failed"
    assert "unknown hook(s) 'stagekit_register_stage' (did you mean 'stagekit_register_stages'?)" in (rec.error or "")
    assert host.manager.get_plugin("typo") is None


def test_a_hook_with_a_wrong_signature_is_an_error() -> None:
    @hookimpl
    def stagekit_register_stages(register: Any, extra: Any) -> None:
        return None

    host = Host(plugins=[module("sig", stagekit_register_stages=stagekit_register_stages)], autoload=False, env={})
    assert host.record("sig").status == "failed" and "invalid hook implementation" in (host.record("sig").error or "")


def test_the_same_stage_name_from_two_plugins_names_both() -> None:
    other = stage(ss.make_dict, name="make", provides=["d2"])
    plugins = [module("one", stagekit_register_stages=registers(ss.make)),
               module("two", stagekit_register_stages=registers(other))]
    host = Host(plugins=plugins, autoload=False, env={})  # listing plugins still works, and shows the clash
    clash = "stage 'make' is registered twice: by plugin 'one' and by plugin 'two'"
    assert clash in (host.record("two").error or "")
    with pytest.raises(RegistrationError, match=clash):
        host.registry  # noqa: B018 -- using the stages is refused
    with pytest.raises(RegistrationError):
        Host(plugins=plugins, autoload=False, env={}, strict=True)


def test_registering_something_that_is_not_a_stage_fails_that_plugin() -> None:
    host = Host(plugins=[module("odd", stagekit_register_stages=registers(ss.make_dict))], autoload=False, env={})
    assert host.record("odd").status == "failed" and "not a Stage" in (host.record("odd").error or "")


def test_blocking_a_plugin_in_code_by_name() -> None:
    host = Host(plugins=[module("acme", stagekit_register_stages=registers(ss.make))], autoload=False, env={},
                block=["acme"])
    assert host.record("acme").status == "blocked" and "make" not in host.registry.stages


def test_unknown_names_in_the_controls_are_errors() -> None:
    with pytest.raises(PluginConfigError, match="unknown plugin.*'acmee'.*did you mean acme"):
        Host(plugins=[module("acme")], autoload=False, env={"STAGEKIT_DISABLE": "acmee"})
    with pytest.raises(PluginConfigError, match="STAGEKIT_PLUGINS"):
        Host(autoload=False, env={"STAGEKIT_PLUGINS": "nothing-like-it"})


def test_two_hosts_do_not_leak_into_each_other() -> None:
    a = Host(plugins=[module("a", stagekit_register_stages=registers(ss.make))], autoload=False, env={})
    b = Host(plugins=[module("b", stagekit_register_stages=registers(ss.read_d))], autoload=False, env={})
    assert "make" in a.registry.stages and "make" not in b.registry.stages
    assert a.manager is not b.manager and b.manager.get_plugin("a") is None


def test_a_host_spec_rebuilds_an_equivalent_host() -> None:
    host = Host(plugins=[ss], autoload=False, env={})
    rebuilt = host.spec().build()
    assert [r.name for r in rebuilt.records] == [r.name for r in host.records]


class _Box:
    pass


def _merger(name: str) -> Any:
    class Merges:
        @hookimpl
        def stagekit_register_merges(self, register: Any) -> None:
            register(_Box, lambda base, branches: branches[0])

        @hookimpl
        def stagekit_register_stages(self, register: Any) -> None:
            register(stage(lambda: 1, name=f"{name}_stage", provides=[f"{name}_x"]))

    return (name, Merges())


def test_two_merges_for_one_type_fail_the_later_plugin_when_plugins_load() -> None:
    host = Host(plugins=[_merger("first"), _merger("second")], autoload=False, env={})
    assert host.record("first").status == "loaded"
    second = host.record("second")
    assert second.status == "failed" and "two merges claim" in (second.error or "")
    assert "first" in (second.error or "") and "second" in (second.error or "")
    assert "second_stage" not in host.registry.stages  # all or nothing: its stages are not half-registered
    with pytest.raises(PluginError, match="two merges claim"):
        Host(plugins=[_merger("first"), _merger("second")], autoload=False, env={}, strict=True)
