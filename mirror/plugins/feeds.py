# SPDX-License-Identifier: GPL-3.0-or-later
"""The documents built from a snapshot: 0.8.4's status file, the tunasync jobs feed, and the
texts they share (exit-code messages, sizes, times).

Pure functions of a :class:`mirror.views.Snapshot`, used by TaskStatus
(files), SlateFish (HTTP) and :mod:`mirror.viewjson` (``/api/status`` and the
control socket's replies), so all of them always say the same thing.
"""
from __future__ import annotations

from datetime import datetime, tzinfo

from mirror.history import exit_status as state_exit_status
from mirror.kinds import result_message as exit_code_message
from mirror.plugin import (
    CANCELLED,
    DISABLED,
    FAILED,
    INTERRUPTED,
    KILLED,
    RUNNING,
    STALLED,
    SUCCESS,
    TIMEOUT,
    UNATTENDED,
    UNCHANGED,
    VETOED,
    Snapshot,
    TaskView,
)

# 0.8.4's status codes.
STATUS_INITIAL = 0
STATUS_RUNNING = 1
STATUS_FINISHED = 2
STATUS_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

# tunasync's time format, and Go's zero time, which it shows for "never".
JOBS_TIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"
NEVER_TEXT = "0001-01-01 00:00:00 +0000"
NEVER_TS = -62135596800


def result_message(task: TaskView) -> str:
    """What the last run's result means, in words, for any exit code or signal."""
    if task.result is None:
        return "Never run"
    if task.result == TIMEOUT:
        return "Timed out; the process group was killed"
    if task.result == UNCHANGED:
        return "Up to date: the upstream's checkfile had not changed since the last sync"
    if task.result == STALLED:
        return "Stalled: no data moved for the task's iotimeout; the process group was killed"
    if task.result == VETOED:
        return f"Not synced: exec_before exited with code {task.exit_code}"
    if task.result == CANCELLED:
        return "Cancelled by an admin"
    if task.result == KILLED:
        return "Ended because mirrord stopped"
    if task.result == UNATTENDED:
        return ("Ended while mirrord was not watching it (after a crash); "
                "its exit status is unknown")
    if task.result == INTERRUPTED:
        return "Interrupted: it ended while mirrord was not running; its exit status is unknown"
    if task.signal is not None:
        return f"Killed by {task.signal}"
    code = task.exit_code
    if code is None:
        return "Could not be started; see the task log"
    return exit_code_message(task.type, code)


def human_size(size: int | None) -> str:
    """``1.5G``-style size (binary units), or ``unknown``."""
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if value < 1024 or unit == "P":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def local_text(when: float | None, zone: tzinfo, pattern: str) -> str | None:
    """*when* (epoch seconds) as local time in *pattern*, or None."""
    if when is None:
        return None
    return datetime.fromtimestamp(when, zone).strftime(pattern)


def status_document(snapshot: Snapshot) -> dict[str, dict[str, object]]:
    """0.8.4's status file: ``{task: {status, schedule, date, exitcode, message, upstream}}``.

    status is 0 (never run), 1 (running) or 2 (finished); date is when the
    current run started or the last one ended; exitcode is -N after signal N.
    """
    document = {}
    for task in snapshot.tasks:
        entry: dict[str, object] = {
            "schedule": local_text(task.next_run, snapshot.zone, STATUS_DATE_FORMAT) or "Unknown",
            "upstream": task.shown_upstream or "",
        }
        if task.state == RUNNING:
            entry.update(status=STATUS_RUNNING,
                         date=local_text(task.started, snapshot.zone, STATUS_DATE_FORMAT))
        elif task.result is None:
            entry["status"] = STATUS_INITIAL
        else:
            entry.update(status=STATUS_FINISHED,
                         date=local_text(task.last_end, snapshot.zone, STATUS_DATE_FORMAT),
                         exitcode=exit_status(task), message=result_message(task))
        document[task.name] = entry
    return document


def exit_status(task: TaskView) -> int | None:
    """The last run's exit code, or -N if signal N ended it."""
    return state_exit_status(task.exit_code, task.signal)


def jobs_status(task: TaskView) -> str:
    """tunasync's status word: success, failed, syncing, paused, disabled or none."""
    if task.state == RUNNING:
        return "syncing"
    if task.state == DISABLED:
        return "disabled"
    if task.result in (SUCCESS, UNCHANGED):  # synced, or checked and nothing was new
        return "success"
    # After a crash the mirror is not known to be fresh: unattended and interrupted are
    # "failed" too (tunasync has no word for "unknown").
    if task.result in (FAILED, TIMEOUT, STALLED, UNATTENDED, INTERRUPTED):
        return "failed"
    if task.result in (CANCELLED, KILLED, VETOED):
        return "paused"
    return "none"


def _stamp(when: float | None, zone: tzinfo) -> tuple[str, int]:
    if when is None:
        return NEVER_TEXT, NEVER_TS
    return datetime.fromtimestamp(when, zone).strftime(JOBS_TIME_FORMAT), int(when)


def jobs_document(snapshot: Snapshot) -> list[dict[str, object]]:
    """tunasync's ``GET /jobs`` array, one object per task, sorted by name."""
    jobs = []
    for task in snapshot.tasks:
        job: dict[str, object] = {
            "name": task.name, "is_master": True, "status": jobs_status(task),
            "upstream": task.shown_upstream or "",
            "size": human_size(task.size),
        }
        started = task.started if task.state == RUNNING else task.last_start
        for key, when in (("last_update", task.last_success), ("last_started", started),
                          ("last_ended", task.last_end), ("next_schedule", task.next_run)):
            job[key], job[f"{key}_ts"] = _stamp(when, snapshot.zone)
        jobs.append(job)
    return jobs

