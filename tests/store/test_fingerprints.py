"""Stage fingerprints: each part (code, distribution, version, params, contracts, contract mode, inputs) changes
the fingerprint, and ``reason`` names the part; records survive JSON and other processes."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from stagekit import Provenance, stage
from stagekit.stage import Stage
from stagekit.store.builtin_codecs import builtin_codec_table
from stagekit.store.fingerprints import (
    StageFingerprint,
    code_text,
    reason,
    schema_text,
    stage_fingerprint,
    stage_record,
)

PLUGIN = Provenance("momentum", "stagekit-momentum", "1.0")
INPUTS = {"prices": "a" * 64}


def select(prices: Any, top_n: int, window: tuple[int, int] = (5, 20)) -> Any:
    return prices


def select_changed(prices: Any, top_n: int, window: tuple[int, int] = (5, 20)) -> Any:
    return prices.head(top_n)


SELECT = stage(select, requires=["prices"], provides=["picked"], params={"top_n": 20})


def record(st: Stage = SELECT, provenance: Provenance | None = PLUGIN, params: dict[str, Any] | None = None,
           inputs: dict[str, str | None] | None = None, mode: str = "strict", **kw: Any) -> StageFingerprint:
    return stage_record(st, provenance, {"top_n": 20} if params is None else params,
                        INPUTS if inputs is None else inputs, mode, **kw)


def test_the_same_stage_gives_the_same_fingerprint_and_no_reason_to_run() -> None:
    a, b = record(), record()
    assert a.digest == b.digest and a.digest is not None and len(a.digest) == 64
    assert a == b and reason(a, b) == "unchanged"
    assert stage_fingerprint(SELECT, PLUGIN, {"top_n": 20}, INPUTS, "strict") == a.digest
    assert reason(None, a) == "no earlier run"


@pytest.mark.parametrize(("change", "why"), [
    (dict(st=SELECT.evolve(func=select_changed)), "code changed"),
    (dict(provenance=Provenance("momentum", "stagekit-momentum", "1.1")),
     "stagekit-momentum 1.0 → stagekit-momentum 1.1"),
    (dict(provenance=None), "stagekit-momentum 1.0 → no distribution"),
    (dict(version=2), "version None → 2"),
    (dict(params={"top_n": 30}), "param top_n 20 → 30"),
    (dict(params={"top_n": 20, "window": (5, 30)}), "param window added"),
    (dict(params={}), "param top_n removed"),
    (dict(params={"top_n": "20"}), "param top_n 20 → '20'"),
    (dict(mode="warn"), "contract mode strict → warn"),
    (dict(inputs={"prices": "b" * 64}), "input 'prices' changed"),
    (dict(inputs={**INPUTS, "calendar": "c" * 64}), "input 'calendar' added"),
    (dict(st=SELECT.evolve(provides=["chosen"])), "provides ['picked'] → ['chosen']"),
    (dict(st=SELECT.evolve(name="select_v2")), "renamed from 'select'"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_each_part_changes_the_fingerprint_and_reason_names_it(change: dict[str, Any], why: str) -> None:
    before, after = record(), record(**change)
    assert before.digest != after.digest
    assert reason(before, after) == why


def test_several_changes_are_all_named() -> None:
    before = record()
    after = record(st=SELECT.evolve(func=select_changed), params={"top_n": 30}, inputs={"prices": "b" * 64},
                   version="2024-06")
    assert reason(before, after) == "code changed; version None → 2024-06; param top_n 20 → 30; input 'prices' changed"


def test_a_version_on_the_stage_is_read_from_it() -> None:
    class Versioned:  # what Stage will carry: a version its author bumps
        def __init__(self, base: Stage, version: str) -> None:
            self.base, self.version = base, version

        def __getattr__(self, name: str) -> Any:
            return getattr(self.base, name)

    one, two = record(st=Versioned(SELECT, "1")), record(st=Versioned(SELECT, "2"))  # type: ignore[arg-type]
    assert one.version == "1" and reason(one, two) == "version 1 → 2"
    assert record(st=Versioned(SELECT, "2"), version="3").version == "3"  # type: ignore[arg-type]


GE0 = pa.DataFrameSchema({"price": pa.Column(float, pa.Check.ge(0))})
GE1 = pa.DataFrameSchema({"price": pa.Column(float, pa.Check.ge(1))})


class Prices(pa.DataFrameModel):
    price: float = pa.Field(ge=0)


class PricesStricter(pa.DataFrameModel):
    price: float = pa.Field(ge=1)


def test_contracts_change_the_fingerprint_checks_included() -> None:
    with_schema = record(st=SELECT.evolve(inputs={"prices": GE0}))
    assert reason(record(), with_schema) == "contract on input prices added"
    assert reason(with_schema, record(st=SELECT.evolve(inputs={"prices": GE1}))) == "contract on input prices changed"
    out = record(st=SELECT.evolve(outputs={"picked": "schemas:Picked"}))
    other = record(st=SELECT.evolve(outputs={"picked": "schemas:PickedV2"}))
    assert reason(out, other) == "contract on output picked changed"
    assert schema_text(GE0) != schema_text(GE1)  # a schema's own repr leaves its checks out
    assert schema_text(Prices) != schema_text(PricesStricter)
    assert schema_text("schemas:Picked") == "schemas:Picked"
    lam = pa.DataFrameSchema({"x": pa.Column(int, pa.Check(lambda s: s > 0))})
    assert " at 0x" not in schema_text(lam)


def test_params_go_through_the_codecs_or_canonical_json() -> None:
    frame = pd.DataFrame({"x": [1, 2]})
    a = record(params={"weights": frame, "window": (5, 20), "scale": np.float64(2.0)})
    b = record(params={"weights": frame.copy(), "window": (5, 20), "scale": np.float64(2.0)})
    assert a.digest == b.digest
    c = record(params={"weights": frame.assign(x=[1, 3]), "window": (5, 20), "scale": np.float64(2.0)})
    assert reason(a, c) == "param weights DataFrame(2 rows, columns ['x']) → DataFrame(2 rows, columns ['x'])"
    assert builtin_codec_table().fingerprint(frame) == a.params["weights"]


def test_an_input_or_param_without_a_fingerprint_makes_the_stage_uncacheable() -> None:
    missing = record(inputs={"prices": None})
    assert missing.digest is None
    assert stage_fingerprint(SELECT, PLUGIN, {"top_n": 20}, {"prices": None}, "strict") is None
    assert missing.uncacheable == "input 'prices' has no fingerprint (no codec stores its value)"
    assert reason(record(), missing) == "not cached: input 'prices' has no fingerprint (no codec stores its value)"
    assert record(inputs={}).uncacheable == "input 'prices' has no fingerprint (no codec stores its value)"
    opaque = record(params={"top_n": 20, "model": object()})
    assert opaque.digest is None and opaque.uncacheable is not None
    assert opaque.uncacheable.startswith("param 'model' cannot be fingerprinted: no codec is registered for object")
    assert reason(opaque, record()).startswith("the earlier run was not cached: param 'model'")


def test_a_record_survives_json() -> None:
    a = record(st=SELECT.evolve(inputs={"prices": GE0}), params={"top_n": 20, "window": (5, 20)})
    back = StageFingerprint.from_dict(json.loads(json.dumps(a.to_dict())))
    assert back == a and back.digest == a.digest and reason(back, a) == "unchanged"
    older = StageFingerprint.from_dict({**a.to_dict(), "format": 0})
    assert reason(older, a) == "the fingerprint format changed (0 → 1)"


STAGES = '''
from stagekit import stage

def helper(x):
    return x

@stage(requires=["prices"], provides=["returns"], params={{"top_n": 20}})
def compute(prices, top_n):
    """Returns."""
    return helper(prices) * {factor}

lazy = stage("{module}:compute", name="lazy", requires=["prices"], provides=["returns"])
'''


def write_module(root: Path, name: str, factor: int) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(STAGES.format(factor=factor, module=name)))


@pytest.fixture
def stages_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, ModuleType]]:
    name = f"fp_stages_{tmp_path.name.replace('-', '_')}"
    write_module(tmp_path, name, factor=2)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    yield tmp_path, module
    sys.modules.pop(name, None)


def test_fingerprints_are_stable_across_processes(stages_module: tuple[Path, ModuleType]) -> None:
    root, module = stages_module
    here = [stage_fingerprint(st, PLUGIN, {"top_n": 20, "w": [1.5]}, INPUTS, "strict")
            for st in (module.compute, module.lazy)]
    assert here[0] != here[1]  # two stages (names), one function: a lazy reference is the function it names
    assert record(st=module.compute).code == record(st=module.lazy).code
    code = (f"import sys; sys.path.insert(0, {str(root)!r})\n"
            f"import {module.__name__} as m\n"
            "from stagekit import Provenance\n"
            "from stagekit.store.fingerprints import stage_fingerprint\n"
            "p = Provenance('momentum', 'stagekit-momentum', '1.0')\n"
            f"print([stage_fingerprint(s, p, {{'top_n': 20, 'w': [1.5]}}, {INPUTS!r}, 'strict') "
            "for s in (m.compute, m.lazy)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "7", "PATH": "/usr/bin"})
    assert out.stdout.strip() == repr(here)


def test_an_edited_module_changes_the_code_fingerprint(stages_module: tuple[Path, ModuleType]) -> None:
    root, module = stages_module
    before = record(st=module.compute, params={"top_n": 20})
    write_module(root, module.__name__, factor=3)
    edited_not_reloaded = record(st=module.compute, params={"top_n": 20})
    assert edited_not_reloaded.code != before.code  # the source it shows changed...
    importlib.reload(module)
    reloaded = record(st=module.compute, params={"top_n": 20})
    assert reloaded.code not in (before.code, edited_not_reloaded.code)  # ...and the code that runs, apart
    assert reason(before, reloaded) == "code changed"
    assert "return helper(prices) * 3" in code_text(module.compute.callable)


def test_code_without_a_source_file_is_fingerprinted_by_its_compiled_code() -> None:
    code = ("from stagekit import stage\n"
            "from stagekit.store.fingerprints import code_text\n"
            "s = stage(lambda x: x {op} 1, name='inc', requires=['x'], provides=['y'])\n"
            "print(code_text(s.callable))")
    texts = [subprocess.run([sys.executable, "-c", code.format(op=op)], capture_output=True, text=True,
                            check=True).stdout for op in "+-"]
    assert texts[0] != texts[1] and texts[0].startswith("__main__:<lambda>")


def test_a_callable_object_without_source_is_named() -> None:
    assert code_text(len) == "builtins:len"
