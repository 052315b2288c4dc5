# SPDX-License-Identifier: GPL-3.0-or-later
"""``/metrics``: Prometheus text built from a fresh snapshot at each scrape.

The families are written by :mod:`~mirror.plugins.slatefish.exposition`; prometheus_client
gives only the process's own figures (``process_*``), from a private collector that touches
nothing global. SlateFish imports this module at the first ``/metrics`` request, not before:
prometheus_client pulls in http.server, urllib.request, ssl and hashlib, several megabytes of
resident memory that a daemon nobody scrapes should not carry.

Every series is documented in docs/metrics.md; the names follow Prometheus's naming guide
(base units in the name, ``_total`` for counters, ``_info`` for text carried in labels) and
the only labels are bounded by the config: task, result, upstream, mount point, plugin.
"""
from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client.process_collector import ProcessCollector

from mirror import __version__
from mirror.plugin import DISABLED, IDLE, RUNNING, Conditions, RunResult, Snapshot
from mirror.plugins.feeds import exit_status
from mirror.plugins.slatefish.exposition import (
    CONTENT_TYPE,
    Family,
    from_client,
    labels,
    render,
    with_label,
)
from mirror.plugins.slatefish.filesystems import FilesystemWatch, Usage
from mirror.plugins.slatefish.runtally import RunTotals
from mirror.policy import priority_ceiling
from mirror.task import GeneralSettings
from mirror.taskqueue import KINDS

__all__ = ["CONTENT_TYPE", "MetricsPage", "Scrape"]

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
# MetricsPage.text().
Source = Callable[[], Scrape]


class MetricsPage:
    """Builds the whole ``/metrics`` text from what *source* returns, once per call."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._filesystems = FilesystemWatch()
        self._process = ProcessCollector(registry=None)

    def text(self) -> bytes:
        """The exposition as of now.

        Raises:
            whatever the source raises (TimeoutError, LoopClosed).
        """
        scrape = self._source()
        task_mounts, usages = self._filesystems.measure(
            (task.name, task.localdir) for task in scrape.snapshot.tasks if task.localdir)
        families = [*task_families(scrape.snapshot, scrape.runs, task_mounts),
                    *daemon_families(scrape), *filesystem_families(usages),
                    *(from_client(metric) for metric in self._process.collect())]
        return render(families).encode()


def task_families(snapshot: Snapshot, runs: Mapping[str, RunTotals],
                  task_mounts: Mapping[str, str]) -> list[Family]:
    """The per-task families (label ``task``); a value that is unknown has no sample."""
    enabled = Family("mirror_task_enabled", "gauge", "1 if the task is enabled in mirror.ini.")
    running = Family("mirror_task_running", "gauge", "1 while the task is syncing.")
    success = Family("mirror_task_last_success_timestamp_seconds", "gauge",
                     "When the last run that left the mirror fresh (success or unchanged) "
                     "ended, in epoch seconds; absent if none did.")
    last_end = Family("mirror_task_last_end_timestamp_seconds", "gauge",
                      "When the last run ended, whatever its result, in epoch seconds.")
    duration = Family("mirror_task_last_duration_seconds", "gauge",
                      "How long the last finished run took.")
    run_seconds = Family("mirror_task_run_duration_seconds", "histogram",
                         "How long the task's runs took, since mirrord started.")
    exit_code = Family(
        "mirror_task_last_exit_code", "gauge",
        "Exit code of the last run's last stage, -N if signal N ended it; absent if the run "
        "could not start, never ran, or ended while mirrord could not learn its exit status "
        "(unattended, interrupted).")
    result_code = Family(
        "mirror_task_last_result_code", "gauge",
        "The last run's result: 0 success, 1 unchanged, 2 vetoed, 3 cancelled, 4 killed, "
        "5 interrupted, 6 failed, 7 timeout, 8 stalled, 9 unattended (<= 1: fresh; >= 6: the "
        "sync went wrong); absent if it never ran.")
    result = Family("mirror_task_last_result_info", "gauge",
                    "1, with the last run's result as a word; absent if it never ran.")
    next_run = Family("mirror_task_next_run_timestamp_seconds", "gauge",
                      "When the next scheduled run is due, in epoch seconds.")
    period = Family("mirror_task_schedule_period_seconds", "gauge",
                    "The longest wait between two runs of the task's schedule (time: the "
                    "largest gap between matches; interval: the interval).")
    streak = Family("mirror_task_consecutive_failures", "gauge",
                    "Runs in a row that failed, timed out, stalled or ended unattended, up to "
                    "the last one.")
    failures = Family("mirror_task_failures_total", "counter",
                      "Runs that failed, timed out, stalled or ended unattended, ever (kept in "
                      "the state file).")
    size = Family("mirror_task_size_bytes", "gauge",
                  "Size of the task's mirror as last measured; absent if unknown.")
    received = Family("mirror_task_last_received_bytes", "gauge",
                      "Bytes the last run's sync stages received, as rsync --stats said; "
                      "absent if its log did not say.")
    received_total = Family("mirror_task_received_bytes_total", "counter",
                            "Bytes the task's runs received since mirrord started (from rsync "
                            "--stats).")
    upstream = Family("mirror_task_upstream_info", "gauge",
                      "1, with the upstream of the run in progress, else of the last run, else "
                      "the first configured.")
    filesystem = Family("mirror_task_filesystem_info", "gauge",
                        "1, with the mount point of the filesystem that holds the task's "
                        "localdir; absent while the localdir does not exist.")
    empty = RunTotals()
    for task in snapshot.tasks:
        label = labels(task=task.name)  # escaped once, used by every sample of the task
        enabled.add(label, 1 if task.enabled else 0)
        running.add(label, 1 if task.state == RUNNING else 0)
        streak.add(label, task.consecutive_failures)
        failures.add(label, task.failures_total)
        period.add(label, task.period_seconds)
        if task.result is not None:
            result.add(with_label(label, "result", str(task.result)), 1)
            result_code.add(label, RESULT_CODES[task.result])
            code = exit_status(task)
            if code is not None:
                exit_code.add(label, code)
        shown = task.shown_upstream
        if shown is not None:
            upstream.add(with_label(label, "upstream", shown), 1)
        if task.name in task_mounts:
            filesystem.add(with_label(label, "mountpoint", task_mounts[task.name]), 1)
        for family, value in ((success, task.last_success), (last_end, task.last_end),
                              (duration, task.duration), (next_run, task.next_run),
                              (size, task.size), (received, task.received_bytes)):
            if value is not None:
                family.add(label, value)
        totals = runs.get(task.name) or empty
        received_total.add(label, totals.received_bytes)
        for bound, count in totals.cumulative():
            run_seconds.add(with_label(label, "le", bound), count, "_bucket")
        run_seconds.add(label, totals.runs, "_count")
        run_seconds.add(label, totals.seconds, "_sum")
    return [enabled, running, success, last_end, duration, run_seconds, exit_code, result_code,
            result, next_run, period, streak, failures, size, received, received_total,
            upstream, filesystem]


def daemon_families(scrape: Scrape) -> list[Family]:
    """Build info, tasks by state, the queue, the throttles and the plugins' backlogs."""
    snapshot, conditions, general = scrape.snapshot, scrape.conditions, scrape.general
    build = Family("mirror_build_info", "gauge",
                   "1, with the version of mirrord and of Python it runs on.")
    build.add(labels(version=__version__, python_version=platform.python_version()), 1)
    tasks = Family("mirror_tasks", "gauge", "Tasks by state (running, idle, disabled).")
    for state in TASK_STATES:
        tasks.add(labels(state=str(state)),
                  sum(1 for task in snapshot.tasks if task.state == state))
    queue = Family("mirror_queue_entries", "gauge",
                   "Entries in the daemon's queue, by kind (run, retry, timeout, system).")
    for kind in KINDS:
        queue.add(labels(kind=kind), sum(1 for entry in snapshot.queue if entry.kind == kind))
    running = sum(1 for task in snapshot.tasks if task.state == RUNNING)
    throttled = Family(
        "mirror_throttled", "gauge",
        "1 while a limit holds starts back: loadlimit and httpconn let only the more urgent "
        "priorities start, maxtasks only priority 1 and 2.")
    for limit, held in (
            ("loadlimit", priority_ceiling(conditions.load, general.loadlimit) is not None),
            ("httpconn", priority_ceiling(conditions.http_connections, general.httpconn)
             is not None),
            ("maxtasks", 0 < general.maxtasks <= running)):
        throttled.add(labels(limit=limit), 1 if held else 0)
    backlog = Family("mirror_plugin_events_pending", "gauge",
                     "Events queued for each plugin and not yet handled.")
    for plugin, pending in sorted(scrape.backlogs.items()):
        backlog.add(labels(plugin=plugin), pending)
    singles = []
    for name, documentation, value in (
            ("mirror_load5", "The 5-minute load average.", conditions.load),
            ("mirror_load5_limit", "[general] loadlimit; 0: no limit.", general.loadlimit),
            ("mirror_http_connections", "Established TCP connections to [general] httpports.",
             conditions.http_connections),
            ("mirror_http_connections_limit", "[general] httpconn; 0: no limit.",
             general.httpconn),
            ("mirror_running_tasks_limit", "[general] maxtasks; 0: no limit.",
             general.maxtasks)):
        family = Family(name, "gauge", documentation)
        family.add("", value)
        singles.append(family)
    return [build, tasks, queue, *singles, throttled, backlog]


def filesystem_families(usages: list[Usage]) -> list[Family]:
    """Free and total bytes of each filesystem that holds a localdir (label ``mountpoint``)."""
    available = Family("mirror_filesystem_avail_bytes", "gauge",
                       "Bytes free for unprivileged users on a filesystem that holds a localdir.")
    size = Family("mirror_filesystem_size_bytes", "gauge",
                  "Size of a filesystem that holds a localdir.")
    for usage in usages:
        label = labels(mountpoint=usage.mountpoint)
        available.add(label, usage.available_bytes)
        size.add(label, usage.size_bytes)
    return [available, size]
