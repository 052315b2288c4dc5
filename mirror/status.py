# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-only snapshots of the daemon: the queue and each task's status, as JSON-ready dicts."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo

from mirror.core import SchedulingCore
from mirror.history import TaskHistory
from mirror.localzone import iso
from mirror.views import task_view


def queue_snapshot(core: SchedulingCore, zone: tzinfo) -> list[dict[str, object]]:
    """The queue in due order: name, kind, due, priority."""
    stamps: dict[float, str | None] = {}  # tasks often share due times; format each once
    snapshot: list[dict[str, object]] = []
    for entry in core.entries():
        due = stamps.get(entry.due)
        if due is None:
            due = stamps[entry.due] = iso(entry.due, zone)
        snapshot.append({"name": entry.name, "kind": entry.kind, "due": due,
                         "priority": entry.priority})
    return snapshot


def task_status(name: str, core: SchedulingCore, states: Mapping[str, TaskHistory],
                zone: tzinfo) -> dict[str, object]:
    """One task's status: state, pid, stage, started, last result, next run, upstream."""
    task = task_view(name, core, states)
    return {
        "state": task.state,
        "pid": task.pid,
        "stage": task.stage,
        "stages": task.stages,
        "started": iso(task.started, zone),
        "upstream": task.upstream,
        "last_start": iso(task.last_start, zone),
        "last_end": iso(task.last_end, zone),
        "duration": task.duration,
        "last_result": task.result,
        "exit_code": task.exit_code,
        "signal": task.signal,
        "last_success": iso(task.last_success, zone),
        "consecutive_failures": task.consecutive_failures,
        "next_run": iso(task.next_run, zone),
    }


def status_snapshot(core: SchedulingCore, states: Mapping[str, TaskHistory],
                    zone: tzinfo) -> dict[str, dict[str, object]]:
    """Every task's status, keyed by name (tasks removed by a reload show while they run)."""
    return {name: task_status(name, core, states, zone) for name in core.known_names()}
