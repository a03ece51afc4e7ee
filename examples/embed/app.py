"""An application embedding stagekit: its own host, its own entry-point group, stages registered in code."""

from __future__ import annotations

import statistics
from typing import Any

from stagekit import Host, Pipeline, hookimpl, stage


@stage(requires=["readings"], provides=["clean"], description="Drop impossible temperatures")
def clean(readings: list[float]) -> list[float]:
    return [r for r in readings if -90.0 < r < 60.0]


@stage(requires=["clean"], provides=["mean"])
def mean(clean: list[float]) -> float:
    return statistics.fmean(clean)


@stage(requires=["clean"], provides=["spread"])
def spread(clean: list[float]) -> float:
    return max(clean) - min(clean)


class WeatherStages:
    """The app's own plugin: registered in code, through the same hook third parties use."""

    @hookimpl
    def stagekit_register_stages(self, register: Any) -> None:
        for s in (clean, mean, spread):
            register(s)


def make_host(**options: Any) -> Host:
    """The app's host: entry points come from the group 'weatherapp', never from 'stagekit'."""
    return Host(group="weatherapp", plugins=[("weatherapp.core", WeatherStages())], **options)


def main() -> dict[str, Any]:
    host = make_host()
    result = Pipeline.from_host(host, targets=["mean", "spread"]).run(
        {"readings": [12.5, 14.0, 999.0, 11.0]}, executor="thread")
    print(f"mean={result.artifacts['mean']:.2f} spread={result.artifacts['spread']:.2f}")
    return result.artifacts


if __name__ == "__main__":
    main()
