"""How long the ``stagekit`` command takes to start: ``--version`` (target 100 ms) and ``stages`` (300 ms).

Each command runs as a fresh process through the console script next to this interpreter, 10 times,
interleaved with the other commands so that machine noise hits them all alike; the median is printed
with the bare interpreter's start-up (``python -c pass``) for scale. The plugins are whatever is installed
in this environment (the bundled ones, if installed: the listing below says which loaded). Then the
slowest imports of each command (``python -X importtime``), which is where start-up time goes.

    python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGETS_MS = {"--version": 100.0, "stages": 300.0}


def stagekit_command() -> list[str]:
    script = shutil.which("stagekit", path=str(Path(sys.executable).parent))
    if script:
        return [script]
    return [sys.executable, "-c", "import sys; from stagekit.cli import main; sys.exit(main())"]


def clean_env() -> dict[str, str]:
    """The environment without plugin controls, so every installed plugin loads as it would for a user."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STAGEKIT_")}


def time_once(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000


def slowest_imports(args: list[str], env: dict[str, str], top: int = 6) -> list[tuple[str, float]]:
    """The modules imported directly (not from inside another import) while running ``stagekit ARGS``,
    by cumulative import time in ms: where start-up goes."""
    code = f"import sys; from stagekit.cli import main; sys.exit(main({args!r}))"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    totals: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if len(name) - len(name.lstrip()) == 1:  # nesting shows as indentation: one space is top level
            totals[name.strip()] = totals.get(name.strip(), 0.0) + int(cumulative) / 1000
    return sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    env = clean_env()
    sk = stagekit_command()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "stagekit --version": [*sk, "--version"],
        "stagekit stages": [*sk, "stages"],
        "stagekit stages (autoload off)": [*sk, "stages"],
    }
    envs = {name: env for name in commands}
    envs["stagekit stages (autoload off)"] = {**env, "STAGEKIT_DISABLE_PLUGIN_AUTOLOAD": "1"}

    listing = json.loads(subprocess.run([*sk, "plugins", "--json"], env=env, capture_output=True, text=True,
                                        check=True).stdout)
    loaded = [f"{r['name']} ({r['distribution']})" for r in listing if r["status"] == "loaded"
              and r["distribution"] != "stagekit"]
    others = [f"{r['name']}: {r['status']}" for r in listing if r["status"] != "loaded"]
    stage_count = sum(len(r["stages"]) for r in listing)
    print(f"python {sys.version.split()[0]} at {sys.executable}")
    print(f"stagekit command: {' '.join(sk)}")
    print(f"plugins loaded besides the core's: {', '.join(loaded) or 'none'}; {stage_count} stages")
    if others:
        print(f"not loaded: {', '.join(others)}")

    for command, name in ((commands[n], n) for n in commands):  # warm the OS caches
        time_once(command, envs[name])
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            samples[name].append(time_once(command, envs[name]))

    print(f"\nwall time per process, {runs} runs each, interleaved (ms):")
    print(f"  {'command':<32}{'median':>8}{'min':>8}{'max':>8}{'target':>9}")
    for name, times in samples.items():
        median = statistics.median(times)
        target = next((t for key, t in TARGETS_MS.items() if name == f"stagekit {key}"), None)
        verdict = "" if target is None else f"{target:>7.0f}  {'ok' if median <= target else 'OVER'}"
        print(f"  {name:<32}{median:>8.1f}{min(times):>8.1f}{max(times):>8.1f}  {verdict}")

    for args in (["--version"], ["stages"]):
        imports = ", ".join(f"{n} {ms:.0f}" for n, ms in slowest_imports(args, env))
        print(f"\nslowest direct imports of `stagekit {' '.join(args)}` (cumulative ms, one run): {imports}")


if __name__ == "__main__":
    main()
