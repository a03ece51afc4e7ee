"""Plugin code fails in every way Python allows; each ends in a named failure of that plugin, never a silent
exit, and the other plugins still load."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stagekit import Host, Pipeline, PipelineError, PluginError, RunInterrupted
from stagekit.cli import main


def install(site: Path, name: str, source: str) -> None:
    """A distribution on ``site`` whose entry point in group stagekit is the module ``skt_fault_<name>``."""
    module = f"skt_fault_{name}"
    info = site / f"{module}-1.0.dist-info"
    info.mkdir(parents=True)
    (site / f"{module}.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: skt-fault-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[stagekit]\n{name} = {module}\n")


GOOD = '''
from stagekit import hookimpl, stage

@hookimpl
def stagekit_register_stages(register):
    register(stage(lambda: 1, name="good_stage", provides=["g"]))
'''


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    site.mkdir()
    install(site, "good", GOOD)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("STAGEKIT_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)
    yield site
    for name in [m for m in sys.modules if m.startswith("skt_fault_")]:
        del sys.modules[name]


def host(*names: str, strict: bool = False) -> Host:
    return Host(allow=["good", *names], strict=strict, env={})


@pytest.mark.parametrize(("code", "said"), [("sys.exit()", "sys.exit(None)"), ("sys.exit(3)", "sys.exit(3)"),
                                            ("raise SystemExit('bye')", "sys.exit('bye')")])
def test_a_plugin_that_exits_at_import_fails_by_name_and_the_others_load(site: Path, code: str, said: str) -> None:
    install(site, "exiter", f"import sys\n{code}\n")
    h = host("exiter")
    assert h.record("exiter").status == "failed"
    assert h.record("exiter").error == f"import failed: it called {said}"
    assert h.record("good").status == "loaded" and "good_stage" in h.registry.stages
    with pytest.raises(PluginError, match=r"plugin 'exiter' \(distribution skt-fault-exiter 1.0\): import failed"):
        host("exiter", strict=True)


def test_a_registration_hook_that_exits_fails_its_plugin(site: Path) -> None:
    install(site, "quitter", "import sys\nfrom stagekit import hookimpl\n\n@hookimpl\n"
                             "def stagekit_register_stages(register):\n    sys.exit(2)\n")
    assert host("quitter").record("quitter").error == "registration failed: it called sys.exit(2)"


def test_the_cli_never_passes_a_plugin_that_exits_for_success(site: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    install(site, "exiter", "import sys\nsys.exit(0)\nfrom stagekit import hookimpl\n")
    monkeypatch.setenv("STAGEKIT_PLUGINS", "good,exiter")
    Path("p.toml").write_text('[pipeline]\ntargets = ["exiter_stage"]\n')
    for command in (["run", "p.toml"], ["run", "p.toml", "--json"], ["check", "p.toml"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert "unknown stage 'exiter_stage'" in err and "plugin 'exiter'" in err and "sys.exit(0)" in err
    assert main(["--strict-plugins", "stages"]) != 0
    assert "plugin 'exiter'" in capsys.readouterr().err


def test_a_misspelt_hook_prefix_is_noted(site: Path) -> None:
    install(site, "typo", "from stagekit import hookimpl, stage\n\ndef stagkit_register_stages(register):\n"
                          "    register(stage(lambda: 1, name='t', provides=['t']))\n")
    rec = host("typo").record("typo")
    assert rec.status == "loaded" and rec.stages == []
    assert rec.note == ("registered nothing and implements no hook; it defines 'stagkit_register_stages' "
                        "(did you mean 'stagekit_register_stages'?)")


def test_a_stage_of_a_plugin_that_failed_says_why_it_is_unknown(site: Path) -> None:
    install(site, "broken", "raise ImportError('the licence key is missing')\n")
    with pytest.raises(PipelineError) as err:
        Pipeline.from_host(host("broken"), targets=["broken_stage"])
    assert "unknown stage 'broken_stage'" in str(err.value)
    assert "plugin 'broken' (distribution skt-fault-broken 1.0): import failed: ImportError: the licence key" \
           in str(err.value)


def test_ctrl_c_while_a_plugin_imports_names_the_plugin(site: Path) -> None:
    install(site, "sleepy", "raise KeyboardInterrupt\n")  # as if Ctrl-C hit it while it hung at import
    with pytest.raises(RunInterrupted, match=r"interrupted while importing plugin 'sleepy' .*--disable sleepy"):
        host("sleepy")
