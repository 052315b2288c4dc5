# SPDX-License-Identifier: GPL-3.0-or-later
"""What ``/metrics`` counts from run ends: each task's run durations (a histogram) and the
bytes its runs received. Counted from RunFinishedEvent since the plugin started; Prometheus's
``rate()`` and ``increase()`` take the reset at a daemon restart in their stride.

Light on purpose (no prometheus_client): it counts from the first run end, before anyone
scrapes.
"""
from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass, field

from mirror.plugin import RunFinishedEvent

# Upper bounds in seconds, from a checkfile run that finds nothing new (seconds) to a first
# sync of a large archive (a day); +Inf is implied.
DURATION_BUCKETS: tuple[float, ...] = (10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800,
                                       43200, 86400)


@dataclass
class RunTotals:
    """One task's runs since the plugin started."""

    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    runs: int = 0
    seconds: float = 0.0
    received_bytes: int = 0

    def cumulative(self) -> list[tuple[str, int]]:
        """The histogram's buckets as Prometheus writes them: ``le`` and the runs that took at
        most that long, ending with ``+Inf`` (every run)."""
        total, buckets = 0, []
        for bound, count in zip(DURATION_BUCKETS, self.bucket_counts):
            total += count
            buckets.append((str(float(bound)), total))  # "10.0", as client libraries write it
        buckets.append(("+Inf", self.runs))
        return buckets


class RunTally:
    """Counts run ends on the plugin's thread; read from the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, RunTotals] = {}

    def observe(self, event: RunFinishedEvent) -> None:
        """Count the run *event* reports (its duration, and its bytes when rsync said)."""
        seconds = max(0.0, event.duration)
        with self._lock:
            totals = self._tasks.setdefault(event.taskname, RunTotals())
            index = bisect_left(DURATION_BUCKETS, seconds)
            if index < len(DURATION_BUCKETS):
                totals.bucket_counts[index] += 1
            totals.runs += 1
            totals.seconds += seconds
            totals.received_bytes += event.received_bytes or 0

    def totals(self) -> dict[str, RunTotals]:
        """A copy of every task's totals, by task name."""
        with self._lock:
            return {name: RunTotals(list(totals.bucket_counts), totals.runs, totals.seconds,
                                    totals.received_bytes)
                    for name, totals in self._tasks.items()}
