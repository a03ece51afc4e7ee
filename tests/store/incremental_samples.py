"""Stages and helpers shared by the incremental-run tests (issue 14, items 4, 5 and 7).

Everything here is module-level, so that process workers import the stage functions by name (this folder is on
``sys.path`` in the test process and in the subprocesses the tests start, see :func:`subprocess_env`).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stagekit import Host, Pipeline, hookimpl, stage

HERE = Path(__file__).resolve().parent
SRC = str(HERE.parent.parent / "src")


# --- a chain with a side branch ------------------------------------------------------------------------------
#
#   n --scale--> a --shift--> b --square--> c --+
#                                               +--combine--> out
#   m --side-------------------------> s ------+


def scale(n: int, factor: int) -> int:
    return n * factor


def shift(a: int, offset: int) -> int:
    return a + offset


def square(b: int) -> int:
    return b * b


def side(m: int) -> dict[str, int]:
    return {"m": m, "m2": m * m}


def combine(c: int, s: dict[str, int]) -> dict[str, int]:
    return {"c": c, **s}


CHAIN = [
    stage(scale, requires=["n"], provides=["a"], params={"factor": 2}),
    stage(shift, requires=["a"], provides=["b"], params={"offset": 1}),
    stage(square, requires=["b"], provides=["c"]),
    stage(side, requires=["m"], provides=["s"]),
    stage(combine, requires=["c", "s"], provides=["out"]),
]
CHAIN_INPUTS = {"n": 3, "m": 5}
CHAIN_OUT = {"c": 49, "m": 5, "m2": 25}  # ((3 * 2) + 1) ** 2


# --- early cutoff: a stage whose re-run gives the same value ------------------------------------------------


def cap(n: int, limit: int) -> int:
    return min(n, limit)


def describe(capped: int) -> str:
    return f"capped at {capped}"


CAPPED = [
    stage(cap, requires=["n"], provides=["capped"], params={"limit": 100}),
    stage(describe, requires=["capped"], provides=["text"]),
]


# --- cache=False and version= --------------------------------------------------------------------------------


def noisy(n: int) -> int:
    """Stands for a stage with side effects: declared cache=False, it always runs (here, with the same result)."""
    return n + 1


def after_noisy(noise: int) -> int:
    return noise * 10


NOISY = [
    stage(noisy, requires=["n"], provides=["noise"], cache=False),
    stage(after_noisy, requires=["noise"], provides=["tens"]),
]


def versioned_value(a: int) -> int:
    return a - 1


def versioned(version: int) -> list[Any]:
    """scale -> versioned (its author's version=) -> square-like downstream."""
    return [
        stage(scale, requires=["n"], provides=["a"], params={"factor": 2}),
        stage(versioned_value, name="versioned", requires=["a"], provides=["b"], version=version),
        stage(square, requires=["b"], provides=["c"]),
    ]


# --- concurrent writers of one artifact, merged where they join ---------------------------------------------


def seed(n: int) -> dict[str, int]:
    return {"base": n}


def add_key(d: dict[str, int], key: str, value: int) -> dict[str, int]:
    return {**d, key: value}


def total(d: dict[str, int]) -> int:
    return sum(d.values())


def announce(sum_of_d: int) -> str:
    return f"total {sum_of_d}"


MERGED = [
    stage(seed, requires=["n"], provides=["d"]),
    stage(add_key, name="branch_a", requires=["d"], provides=["d"], params={"key": "a", "value": 1}),
    stage(add_key, name="branch_b", requires=["d"], provides=["d"], params={"key": "b", "value": 2}),
    stage(total, name="join", requires=["d"], provides=["sum_of_d"]),
    stage(announce, requires=["sum_of_d"], provides=["announcement"]),
]


# --- a path as an initial artifact ----------------------------------------------------------------------------


def read_text(data: str) -> str:
    return Path(data).read_text()


def count_words(text: str) -> int:
    return len(text.split())


PATHS = [
    stage(read_text, requires=["data"], provides=["text"]),
    stage(count_words, requires=["text"], provides=["words"]),
]


# --- a value type with a codec of a plugin's that counts its reads --------------------------------------------


class Counted:
    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counted) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


class CountedCodec:
    """JSON files; every read appends a line to ``log`` (read in whichever process reads it)."""

    name = "tests.counted"
    suffix = ".json"

    def __init__(self, log: str) -> None:
        self.log = log

    def write(self, value: Counted, path: str) -> None:
        with open(path, "w") as f:
            json.dump({"value": value.value}, f)

    def read(self, path: str) -> Counted:
        with open(path) as f:
            value = json.load(f)["value"]
        with open(self.log, "a") as f:
            f.write(f"{value}\n")
        return Counted(value)

    def fingerprint(self, value: Counted) -> str:
        return hashlib.sha256(f"counted {value.value}".encode()).hexdigest()


class CountedCodecs:
    """A plugin registering :class:`CountedCodec` through ``stagekit_register_codecs``."""

    def __init__(self, log: str | os.PathLike[str]) -> None:
        self.log = os.fspath(log)

    @hookimpl
    def stagekit_register_codecs(self, register: Any) -> None:
        register(Counted, CountedCodec(self.log))


def reads(log: str | os.PathLike[str]) -> list[int]:
    """The values the counting codec has read so far."""
    try:
        return [int(line) for line in Path(log).read_text().split()]
    except FileNotFoundError:
        return []


def make_blob(n: int) -> Counted:
    return Counted(n * 100)


def make_other(n: int) -> Counted:
    return Counted(n * 1000)


def use_blob(blob: Counted, extra: int) -> int:
    return blob.value + extra


LAZY = [
    stage(make_blob, requires=["n"], provides=["blob"]),
    stage(make_other, requires=["n"], provides=["other"]),
    stage(use_blob, requires=["blob"], provides=["used"], params={"extra": 1}),
]


# --- a value that no codec takes ------------------------------------------------------------------------------


class Opaque:
    """Neither a dataclass nor attrs, no codec registered: not storable."""

    def __init__(self, n: int) -> None:
        self.n = n


def make_opaque(n: int) -> Opaque:
    return Opaque(n)


def open_opaque(opaque: Opaque) -> int:
    return opaque.n * 2


OPAQUE = [
    stage(make_opaque, requires=["n"], provides=["opaque"]),
    stage(open_opaque, requires=["opaque"], provides=["opened"]),
]


# --- faults: a failing stage, a stage that kills its own process, slow stages --------------------------------


def fragile(b: int, mode: str) -> int:
    if mode == "bad":
        raise ValueError("the data is bad")
    return b * 3


def after_fragile(tripled: int) -> int:
    return tripled + 1


FRAGILE = [
    stage(scale, requires=["n"], provides=["a"], params={"factor": 2}),
    stage(shift, requires=["a"], provides=["b"], params={"offset": 1}),
    stage(fragile, requires=["b"], provides=["tripled"], params={"mode": "bad"}),
    stage(after_fragile, requires=["tripled"], provides=["final"]),
]

KILL_ENV = "SKT_INCREMENTAL_KILL"  # the process group to kill: the run's own (its driver leads it)


def slow_scale(n: int, factor: int) -> int:
    time.sleep(0.05)
    return n * factor


def maybe_die(b: int) -> int:
    """The third stage: with $SKT_INCREMENTAL_KILL set to the run's process group it sleeps (long enough for
    the recorder, which commits within 50 ms, to have committed the stages before it), then SIGKILLs that whole
    group: its own process under the sequential and thread executors, the driver and every worker under the
    process executor. Only the group it is in, and only when the group's leader is a run started for this."""
    group = os.environ.get(KILL_ENV)
    if group and int(group) == os.getpgrp():
        time.sleep(0.4)
        os.killpg(int(group), signal.SIGKILL)
    return b * b


def fourth(c: int) -> int:
    return c + 1


KILLED = [
    stage(slow_scale, name="first", requires=["n"], provides=["a"], params={"factor": 2}),
    stage(shift, name="second", requires=["a"], provides=["b"], params={"offset": 1}),
    stage(maybe_die, name="third", requires=["b"], provides=["c"]),
    stage(fourth, requires=["c"], provides=["d"]),
]


def sleepy(n: int, pause: float) -> list[int]:
    time.sleep(pause)
    return list(range(n))


def sleepy_sum(values: list[int], pause: float) -> int:
    time.sleep(pause)
    return sum(values)


def halve(sum: int) -> float:  # the artifact's name
    return sum / 2


CONCURRENT = [
    stage(sleepy, requires=["n"], provides=["values"], params={"pause": 0.2}),
    stage(sleepy_sum, requires=["values"], provides=["sum"], params={"pause": 0.2}),
    stage(halve, requires=["sum"], provides=["half"]),
]


def big_value(a: int, size: int, kind: str) -> Any:
    """``size`` random floats (incompressible: 8 bytes each on disk), as a DataFrame (parquet) or an array."""
    import numpy as np

    values = np.random.default_rng(a).random(size)
    if kind == "array":
        return values
    import pandas as pd

    return pd.DataFrame({"x": values})


def value_sum(big: Any) -> float:
    return float(big.sum().sum())


BIG = [
    stage(scale, requires=["n"], provides=["a"], params={"factor": 2}),
    stage(big_value, name="make_big", requires=["a"], provides=["big"], params={"size": 1000, "kind": "frame"}),
    stage(value_sum, requires=["big"], provides=["big_sum"]),
]


# --- a Kedro-like spaceflights project (the pipeline-file tests give the catalog) ----------------------------


def preprocess_companies(companies: Any) -> Any:
    out = companies.copy()
    out["iata_approved"] = out["iata_approved"] == "t"
    return out


def create_model_input_table(preprocessed_companies: Any, shuttles: Any) -> Any:
    table = shuttles.merge(preprocessed_companies, left_on="company_id", right_on="id").drop(columns=["id"])
    return table.sort_values("shuttle").reset_index(drop=True)


def split(model_input_table: Any, test_size: float, marker: str = "") -> dict[str, Any]:
    if marker:
        Path(marker).write_text("split ran")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, not {test_size}")
    n_test = round(len(model_input_table) * test_size)
    return {"train": model_input_table.iloc[n_test:].reset_index(drop=True),
            "test": model_input_table.iloc[:n_test].reset_index(drop=True)}


def train_model(train: Any, scale: float) -> dict[str, float]:
    return {"mean_price": float(train["price"].mean()) * scale,
            "approved_share": float(train["iata_approved"].mean())}


def evaluate(model: dict[str, float], test: Any) -> dict[str, Any]:
    error = (test["price"] - model["mean_price"]).abs().mean()
    return {"test_rows": len(test), "mae": float(error)}


SPACEFLIGHTS = [
    stage(preprocess_companies, requires=["companies"], provides=["preprocessed_companies"]),
    stage(create_model_input_table, requires=["preprocessed_companies", "shuttles"],
          provides=["model_input_table"]),
    stage(split, requires=["model_input_table"], provides=["train", "test"],
          params={"test_size": 0.25, "marker": ""}),
    stage(train_model, requires=["train"], provides=["model"], params={"scale": 1.0}),
    stage(evaluate, requires=["model", "test"], provides=["metrics"]),
]


# --- running, and reading what ran ----------------------------------------------------------------------------


def host(*plugins: object) -> Host:
    return Host.isolated(*plugins)


def run(stages: Iterable[Any], artifacts: Mapping[str, Any], workspace: str | os.PathLike[str], *,
        executor: str = "sequential", plugins: Iterable[object] = (), **options: Any) -> Any:
    """One run of ``stages`` in ``workspace``."""
    return Pipeline(list(stages), host=host(*plugins)).run(dict(artifacts), workspace=workspace,
                                                           executor=executor, **options)


def statuses(result: Any) -> dict[str, str]:
    return {name: record.status for name, record in result.stages.items()}


def reasons(result: Any) -> dict[str, str | None]:
    return {name: record.reason for name, record in result.stages.items()}


def ran(result: Any) -> set[str]:
    """The stages that ran (not reused)."""
    return {name for name, record in result.stages.items() if record.status == "ok"}


def cached(result: Any) -> set[str]:
    return {name for name, record in result.stages.items() if record.status == "cached"}


def values(result: Any) -> dict[str, Any]:
    """Every artifact of the result, read (a lazy mapping included)."""
    return {name: result.artifacts[name] for name in result.artifacts}


def objects_dir(workspace: str | os.PathLike[str]) -> Path:
    return Path(workspace) / ".stagekit" / "objects"


def object_files(workspace: str | os.PathLike[str]) -> list[Path]:
    root = objects_dir(workspace)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def mismatched_objects(workspace: str | os.PathLike[str]) -> list[str]:
    """Objects whose bytes do not hash to their name (a half or corrupt object)."""
    bad = []
    for path in object_files(workspace):
        if hashlib.sha256(path.read_bytes()).hexdigest() != path.name:
            bad.append(str(path))
    return bad


def object_path(workspace: str | os.PathLike[str], stored: Any) -> Path:
    """The file of a ``StoredArtifact`` in the workspace's object store."""
    digest: str = stored.object
    return objects_dir(workspace) / digest[:2] / digest


def subprocess_env(*paths: str | os.PathLike[str], **extra: str) -> dict[str, str]:
    """The environment of a subprocess that imports stagekit, this module and ``paths``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGEKIT_")}
    env["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in paths), str(HERE), SRC, *filter(None, [
        os.environ.get("PYTHONPATH")])])
    env.update(extra)
    return env


def python(code: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60,
           cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python process (``sys.argv[1:]`` are ``args``)."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(env) if env is not None else subprocess_env(), cwd=cwd, check=False)


RUN_SCRIPT = """
import json, sys
import incremental_samples as s
stages = getattr(s, sys.argv[1])
artifacts = json.loads(sys.argv[2])
result = s.run(stages, artifacts, sys.argv[3], executor=sys.argv[4])
print(json.dumps({"statuses": s.statuses(result), "reasons": s.reasons(result), "values": s.values(result),
                  "run_id": result.run_id}))
"""


PAUSE_ENV = "SKT_INCREMENTAL_PAUSE"  # a file the third stage writes, then waits (for a Ctrl-C)


def maybe_pause(b: int) -> int:
    marker = os.environ.get(PAUSE_ENV)
    if marker:
        Path(marker).write_text("waiting")
        time.sleep(30)
    return b * b


PAUSED = [
    stage(slow_scale, name="first", requires=["n"], provides=["a"], params={"factor": 2}),
    stage(shift, name="second", requires=["a"], provides=["b"], params={"offset": 1}),
    stage(maybe_pause, name="third", requires=["b"], provides=["c"]),
    stage(fourth, requires=["c"], provides=["d"]),
]

INTERRUPT_SCRIPT = """
import json, sys
import incremental_samples as s
try:
    s.run(s.PAUSED, {"n": 3}, sys.argv[1], executor=sys.argv[2])
except KeyboardInterrupt as exc:
    print(json.dumps(["interrupted", type(exc).__name__, str(exc)]))
    sys.exit(130)
print(json.dumps(["finished"]))
"""


KILL_SCRIPT = """
import json, os, sys
import incremental_samples as s
assert os.getpgrp() == os.getpid(), "not the leader of its own process group"
os.environ[s.KILL_ENV] = str(os.getpgrp())  # workers started from here inherit it
result = s.run(s.KILLED, {"n": 3}, sys.argv[1], executor=sys.argv[2])
print(json.dumps(s.statuses(result)))
"""


def run_killed(workspace: str | os.PathLike[str], executor: str) -> subprocess.CompletedProcess[str]:
    """A run of :data:`KILLED` whose third stage kills it (the run in a session of its own)."""
    return subprocess.run([sys.executable, "-c", KILL_SCRIPT, os.fspath(workspace), executor], capture_output=True,
                          text=True, env=subprocess_env(), timeout=60, start_new_session=True, check=False)


def run_in_subprocess(stages: str, artifacts: Mapping[str, Any], workspace: str | os.PathLike[str],
                      executor: str = "sequential", **env: str) -> subprocess.Popen[str]:
    """Start a run of ``incremental_samples.<stages>`` in another process (its stdout: the result as JSON)."""
    return subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, stages, json.dumps(dict(artifacts)),
                             os.fspath(workspace), executor], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=subprocess_env(**env))
