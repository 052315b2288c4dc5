# SPDX-License-Identifier: GPL-3.0-or-later
"""``/metrics``: Prometheus text built from a fresh snapshot at each scrape.

Uses a private registry holding one custom collector, so nothing is kept
between scrapes and nothing touches prometheus_client's global registry.
SlateFish imports this module at the first ``/metrics`` request, not before:
prometheus_client pulls in http.server, urllib.request, ssl and hashlib, several
megabytes of resident memory that a daemon nobody scrapes should not carry.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from mirror.plugin import RUNNING, Conditions, Snapshot
from mirror.plugins.feeds import exit_status
from mirror.taskqueue import KINDS

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Returns the daemon now; may raise TimeoutError or LoopClosed, which reach the caller of
# exposition().
Source = Callable[[], tuple[Snapshot, Conditions]]


class SnapshotCollector:
    """Builds every ``mirror_*`` family from what *source* returns, once per collect()."""

    def __init__(self, source: Source) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        """The metric families for the daemon as of now."""
        snapshot, conditions = self._source()
        yield from task_families(snapshot)
        yield from daemon_families(snapshot, conditions)


def task_families(snapshot: Snapshot) -> list[Metric]:
    """The per-task families (label ``task``); a value that is unknown has no sample."""
    enabled = GaugeMetricFamily("mirror_task_enabled", "1 if the task is enabled in mirror.ini.",
                                labels=["task"])
    running = GaugeMetricFamily("mirror_task_running", "1 while the task is syncing.",
                                labels=["task"])
    success = GaugeMetricFamily(
        "mirror_task_last_success_timestamp_seconds",
        "When the last successful run ended (epoch seconds); absent if it never succeeded.",
        labels=["task"])
    duration = GaugeMetricFamily("mirror_task_last_duration_seconds",
                                 "How long the last finished run took.", labels=["task"])
    exit_code = GaugeMetricFamily(
        "mirror_task_last_exit_code",
        "Exit code of the last run's last stage, -N if signal N ended it; absent if the run "
        "could not start, never ran, or ended while mirrord could not learn its exit status "
        "(unattended, interrupted).", labels=["task"])
    next_run = GaugeMetricFamily("mirror_task_next_run_timestamp_seconds",
                                 "When the next scheduled run is due (epoch seconds).",
                                 labels=["task"])
    streak = GaugeMetricFamily("mirror_task_consecutive_failures",
                               "Runs in a row that failed, timed out or ended unattended, "
                               "up to the last one.",
                               labels=["task"])
    failures = CounterMetricFamily("mirror_task_failures",
                                   "Runs that failed, timed out or ended unattended, ever "
                                   "(kept in the state file).",
                                   labels=["task"])
    result = GaugeMetricFamily(
        "mirror_task_last_result",
        "1 for the last run's result (success, unchanged, failed, timeout, stalled, vetoed, "
        "cancelled, killed, unattended, interrupted); absent if it never ran. 'unchanged' "
        "means the checkfile showed nothing new: the mirror is as fresh as after a success.",
        labels=["task", "result"])
    size = GaugeMetricFamily("mirror_task_size_bytes",
                             "Size of the task's mirror as last measured; absent if unknown.",
                             labels=["task"])
    for task in snapshot.tasks:
        label = [task.name]
        enabled.add_metric(label, 1 if task.enabled else 0)
        running.add_metric(label, 1 if task.state == RUNNING else 0)
        streak.add_metric(label, task.consecutive_failures)
        failures.add_metric(label, task.failures_total)
        if task.result is not None:
            result.add_metric([task.name, str(task.result)], 1)
        code = exit_status(task)
        for family, value in ((success, task.last_success), (duration, task.duration),
                              (exit_code, code if task.result is not None else None),
                              (next_run, task.next_run), (size, task.size)):
            if value is not None:
                family.add_metric(label, value)
    return [enabled, running, success, duration, exit_code, result, next_run, streak, failures,
            size]


def daemon_families(snapshot: Snapshot, conditions: Conditions) -> list[Metric]:
    """The queue by kind, the load and the HTTP connections."""
    queue = GaugeMetricFamily("mirror_queue_entries",
                              "Entries in the daemon's queue, by kind (run, retry, timeout, "
                              "system).", labels=["kind"])
    for kind in KINDS:
        queue.add_metric([kind], sum(1 for entry in snapshot.queue if entry.kind == kind))
    load = GaugeMetricFamily("mirror_load5",
                             "The 5-minute load average.", value=conditions.load)
    connections = GaugeMetricFamily(
        "mirror_http_connections",
        "Established TCP connections to [general] httpports.",
        value=conditions.http_connections)
    return [queue, load, connections]


def new_registry(source: Source) -> CollectorRegistry:
    """A private registry with one :class:`SnapshotCollector` reading *source*."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(source))  # type: ignore[arg-type,unused-ignore]
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The text format of *registry*, collected now.

    Raises:
        whatever the collector's source raises (TimeoutError, LoopClosed).
    """
    return generate_latest(registry)
