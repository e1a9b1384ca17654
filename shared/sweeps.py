"""Periodic passes (the events service's report deadlines, the notifier's reminders), counted
so that an operator, and a test, can tell that a pass has run since a given moment: "nothing
more will happen" is then a condition to wait for (a pass that began after it has finished,
and what it queued is published), not a guess at how long to sleep."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric


class Passes:
    """Completed passes of one sweep, and when the newest of them began (wall clock)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.last_started = 0.0  # Unix time; 0: no pass has finished yet

    def started(self) -> float:
        return time.time()

    def finished(self, started: float) -> None:
        self.count += 1
        self.last_started = max(self.last_started, started)


def sweeps_probe(passes: Iterable[Passes]):
    async def probe() -> list[Metric]:
        count = CounterMetricFamily("tongxin_sweep_passes", "periodic passes this process "
                                    "has completed since it started", labels=["sweep"])
        began = GaugeMetricFamily("tongxin_sweep_last_started_seconds", "Unix time at which "
                                  "the newest completed pass began", labels=["sweep"])
        for p in passes:
            count.add_metric([p.name], p.count)
            began.add_metric([p.name], p.last_started)
        return [count, began]

    return probe
