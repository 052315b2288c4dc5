# SPDX-License-Identifier: GPL-3.0-or-later
"""``/metrics``: Prometheus text built from a fresh snapshot at each scrape.

Uses a private registry holding one custom collector (and prometheus_client's process
collector), so nothing is kept between scrapes and nothing touches prometheus_client's global
registry. SlateFish imports this module at the first ``/metrics`` request, not before:
prometheus_client pulls in http.server, urllib.request, ssl and hashlib, several megabytes of
resident memory that a daemon nobody scrapes should not carry.

Every series is documented in docs/metrics.md; the names follow Prometheus's naming guide
(base units in the name, ``_total`` for counters, ``_info`` for text carried in labels) and
the only labels are bounded by the config: task, result, upstream, mount point, plugin.
"""
from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from mirror import __version__
from mirror.plugin import DISABLED, IDLE, RUNNING, Conditions, RunResult, Snapshot
from mirror.plugins.feeds import exit_status
from mirror.plugins.slatefish.filesystems import FilesystemWatch, Usage
from mirror.plugins.slatefish.runtally import RunTotals
from mirror.policy import priority_ceiling
from mirror.task import GeneralSettings
from mirror.taskqueue import KINDS

CONTENT_TYPE = CONTENT_TYPE_LATEST

# mirror_task_last_result_code: ≤ 1 the mirror is fresh; 2–5 the run says nothing about its
# upstream; ≥ 6 the sync went wrong (counted as a failure, retried, a reason to fail over).
RESULT_CODES: Mapping[RunResult, int] = {
    RunResult.SUCCESS: 0, RunResult.UNCHANGED: 1,
    RunResult.VETOED: 2, RunResult.CANCELLED: 3, RunResult.KILLED: 4, RunResult.INTERRUPTED: 5,
    RunResult.FAILED: 6, RunResult.TIMEOUT: 7, RunResult.STALLED: 8, RunResult.UNATTENDED: 9,
}
TASK_STATES = (RUNNING, IDLE, DISABLED)


@dataclass(frozen=True)
class Scrape:
    """Everything one scrape reports: the daemon now, the system, the settings, what each
    plugin has waiting and what the runs since the plugin started added up to."""

    snapshot: Snapshot
    conditions: Conditions
    general: GeneralSettings
    backlogs: Mapping[str, int]
    runs: Mapping[str, RunTotals]


# Returns the daemon now; may raise TimeoutError or LoopClosed, which reach the caller of
# exposition().
Source = Callable[[], Scrape]


class SnapshotCollector:
    """Builds every ``mirror_*`` family from what *source* returns, once per collect()."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._filesystems = FilesystemWatch()

    def collect(self) -> Iterator[Metric]:
        """The metric families for the daemon as of now."""
        scrape = self._source()
        task_mounts, usages = self._filesystems.measure(
            (task.name, task.localdir) for task in scrape.snapshot.tasks if task.localdir)
        yield from task_families(scrape.snapshot, scrape.runs, task_mounts)
        yield from daemon_families(scrape)
        yield from filesystem_families(usages)


def task_families(snapshot: Snapshot, runs: Mapping[str, RunTotals],
                  task_mounts: Mapping[str, str]) -> list[Metric]:
    """The per-task families (label ``task``); a value that is unknown has no sample."""
    def gauge(name: str, documentation: str, *extra: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, documentation, labels=["task", *extra])

    enabled = gauge("mirror_task_enabled", "1 if the task is enabled in mirror.ini.")
    running = gauge("mirror_task_running", "1 while the task is syncing.")
    success = gauge("mirror_task_last_success_timestamp_seconds",
                    "When the last run that left the mirror fresh (success or unchanged) "
                    "ended, in epoch seconds; absent if none did.")
    last_end = gauge("mirror_task_last_end_timestamp_seconds",
                     "When the last run ended, whatever its result, in epoch seconds.")
    duration = gauge("mirror_task_last_duration_seconds", "How long the last finished run took.")
    exit_code = gauge(
        "mirror_task_last_exit_code",
        "Exit code of the last run's last stage, -N if signal N ended it; absent if the run "
        "could not start, never ran, or ended while mirrord could not learn its exit status "
        "(unattended, interrupted).")
    result_code = gauge(
        "mirror_task_last_result_code",
        "The last run's result: 0 success, 1 unchanged, 2 vetoed, 3 cancelled, 4 killed, "
        "5 interrupted, 6 failed, 7 timeout, 8 stalled, 9 unattended (<= 1: fresh; >= 6: the "
        "sync went wrong); absent if it never ran.")
    result = gauge("mirror_task_last_result_info",
                   "1, with the last run's result as a word; absent if it never ran.", "result")
    next_run = gauge("mirror_task_next_run_timestamp_seconds",
                     "When the next scheduled run is due, in epoch seconds.")
    period = gauge("mirror_task_schedule_period_seconds",
                   "The longest wait between two runs of the task's schedule (time: the "
                   "largest gap between matches; interval: the interval).")
    streak = gauge("mirror_task_consecutive_failures",
                   "Runs in a row that failed, timed out, stalled or ended unattended, up to "
                   "the last one.")
    failures = CounterMetricFamily("mirror_task_failures",
                                   "Runs that failed, timed out, stalled or ended unattended, "
                                   "ever (kept in the state file).", labels=["task"])
    size = gauge("mirror_task_size_bytes",
                 "Size of the task's mirror as last measured; absent if unknown.")
    received = gauge("mirror_task_last_received_bytes",
                     "Bytes the last run's sync stages received, as rsync --stats said; absent "
                     "if its log did not say.")
    received_total = CounterMetricFamily(
        "mirror_task_received_bytes",
        "Bytes the task's runs received since mirrord started (from rsync --stats).",
        labels=["task"])
    run_seconds = HistogramMetricFamily(
        "mirror_task_run_duration_seconds",
        "How long the task's runs took, since mirrord started.", labels=["task"])
    upstream = gauge("mirror_task_upstream_info",
                     "1, with the upstream of the run in progress, else of the last run, else "
                     "the first configured.", "upstream")
    filesystem = gauge("mirror_task_filesystem_info",
                       "1, with the mount point of the filesystem that holds the task's "
                       "localdir; absent while the localdir does not exist.", "mountpoint")
    for task in snapshot.tasks:
        label = [task.name]
        enabled.add_metric(label, 1 if task.enabled else 0)
        running.add_metric(label, 1 if task.state == RUNNING else 0)
        streak.add_metric(label, task.consecutive_failures)
        failures.add_metric(label, task.failures_total)
        period.add_metric(label, task.period_seconds)
        if task.result is not None:
            result.add_metric([task.name, str(task.result)], 1)
            result_code.add_metric(label, RESULT_CODES[task.result])
        shown = task.shown_upstream
        if shown is not None:
            upstream.add_metric([task.name, shown], 1)
        if task.name in task_mounts:
            filesystem.add_metric([task.name, task_mounts[task.name]], 1)
        code = exit_status(task)
        for family, value in ((success, task.last_success), (last_end, task.last_end),
                              (duration, task.duration),
                              (exit_code, code if task.result is not None else None),
                              (next_run, task.next_run), (size, task.size),
                              (received, task.received_bytes)):
            if value is not None:
                family.add_metric(label, value)
        totals = runs.get(task.name) or RunTotals()
        received_total.add_metric(label, totals.received_bytes)
        run_seconds.add_metric(label, totals.cumulative(), totals.seconds)
    return [enabled, running, success, last_end, duration, run_seconds, exit_code, result_code,
            result, next_run, period, streak, failures, size, received, received_total,
            upstream, filesystem]


def daemon_families(scrape: Scrape) -> list[Metric]:
    """Build info, tasks by state, the queue, the throttles and the plugins' backlogs."""
    snapshot, conditions, general = scrape.snapshot, scrape.conditions, scrape.general
    build = GaugeMetricFamily("mirror_build_info",
                              "1, with the version of mirrord and of Python it runs on.",
                              labels=["version", "python_version"])
    build.add_metric([__version__, platform.python_version()], 1)
    tasks = GaugeMetricFamily("mirror_tasks", "Tasks by state (running, idle, disabled).",
                              labels=["state"])
    for state in TASK_STATES:
        tasks.add_metric([str(state)], sum(1 for task in snapshot.tasks if task.state == state))
    queue = GaugeMetricFamily("mirror_queue_entries",
                              "Entries in the daemon's queue, by kind (run, retry, timeout, "
                              "system).", labels=["kind"])
    for kind in KINDS:
        queue.add_metric([kind], sum(1 for entry in snapshot.queue if entry.kind == kind))
    running = sum(1 for task in snapshot.tasks if task.state == RUNNING)
    throttled = GaugeMetricFamily(
        "mirror_throttled",
        "1 while a limit holds starts back: loadlimit and httpconn let only the more urgent "
        "priorities start, maxtasks only priority 1 and 2.", labels=["limit"])
    for limit, held in (
            ("loadlimit", priority_ceiling(conditions.load, general.loadlimit) is not None),
            ("httpconn", priority_ceiling(conditions.http_connections, general.httpconn)
             is not None),
            ("maxtasks", 0 < general.maxtasks <= running)):
        throttled.add_metric([limit], 1 if held else 0)
    backlog = GaugeMetricFamily("mirror_plugin_events_pending",
                                "Events queued for each plugin and not yet handled.",
                                labels=["plugin"])
    for plugin, pending in sorted(scrape.backlogs.items()):
        backlog.add_metric([plugin], pending)
    return [
        build, tasks, queue,
        GaugeMetricFamily("mirror_load5", "The 5-minute load average.", value=conditions.load),
        GaugeMetricFamily("mirror_load5_limit", "[general] loadlimit; 0: no limit.",
                          value=general.loadlimit),
        GaugeMetricFamily("mirror_http_connections",
                          "Established TCP connections to [general] httpports.",
                          value=conditions.http_connections),
        GaugeMetricFamily("mirror_http_connections_limit", "[general] httpconn; 0: no limit.",
                          value=general.httpconn),
        GaugeMetricFamily("mirror_running_tasks_limit", "[general] maxtasks; 0: no limit.",
                          value=general.maxtasks),
        throttled, backlog]


def filesystem_families(usages: list[Usage]) -> list[Metric]:
    """Free and total bytes of each filesystem that holds a localdir (label ``mountpoint``)."""
    available = GaugeMetricFamily(
        "mirror_filesystem_avail_bytes",
        "Bytes free for unprivileged users on a filesystem that holds a localdir.",
        labels=["mountpoint"])
    size = GaugeMetricFamily("mirror_filesystem_size_bytes",
                             "Size of a filesystem that holds a localdir.", labels=["mountpoint"])
    for usage in usages:
        available.add_metric([usage.mountpoint], usage.available_bytes)
        size.add_metric([usage.mountpoint], usage.size_bytes)
    return [available, size]


def new_registry(source: Source) -> CollectorRegistry:
    """A private registry with one :class:`SnapshotCollector` reading *source*, and the
    process's own figures (``process_*``: memory, CPU, descriptors, start time)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(source))  # type: ignore[arg-type,unused-ignore]
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The text format of *registry*, collected now.

    Raises:
        whatever the collector's source raises (TimeoutError, LoopClosed).
    """
    return generate_latest(registry)
