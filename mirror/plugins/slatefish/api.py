# SPDX-License-Identifier: GPL-3.0-or-later
"""``/api/status``: every task and the queue as one JSON-ready document.

Each time is given twice, as ``key`` (ISO 8601 in the daemon's zone, or None
for never) and ``key_ts`` (epoch seconds, or None). ``state`` is the tunasync
word /jobs and the page use (success, failed, syncing, paused, disabled, none).
"""
from __future__ import annotations

from mirror.localzone import iso
from mirror.plugins.feeds import exit_status, human_size, jobs_status, result_message
from mirror.views import RUNNING, Snapshot, TaskView


def api_document(snapshot: Snapshot) -> dict[str, object]:
    """``{"generated", "generated_ts", "tasks": [...], "queue": [...]}``, tasks by name."""
    zone = snapshot.zone
    return {
        "generated": iso(snapshot.taken, zone),
        "generated_ts": snapshot.taken,
        "tasks": [_task(task, snapshot) for task in snapshot.tasks],
        "queue": [{"name": entry.name, "kind": entry.kind, "due": iso(entry.due, zone),
                   "due_ts": entry.due, "priority": entry.priority} for entry in snapshot.queue],
    }


def _task(task: TaskView, snapshot: Snapshot) -> dict[str, object]:
    running = task.state == RUNNING
    entry: dict[str, object] = {
        "name": task.name,
        "type": task.type,
        "enabled": task.enabled,
        "state": jobs_status(task),
        "schedule": task.schedule,
        "result": task.result,
        "message": result_message(task),
        "exit_code": task.exit_code,
        "signal": task.signal,
        "exit_status": exit_status(task),
        "upstream": task.shown_upstream,
        "upstreams": list(task.upstreams),
        "size": task.size,
        "size_human": human_size(task.size),
        "duration": task.duration,
        "consecutive_failures": task.consecutive_failures,
        "failures_total": task.failures_total,
        "running": running,
        "pid": task.pid,
        "stage": task.stage,
        "stages": task.stages,
    }
    for key, when in (("started", task.started), ("last_start", task.last_start),
                      ("last_end", task.last_end), ("last_success", task.last_success),
                      ("next_run", task.next_run)):
        entry[key] = iso(when, snapshot.zone)
        entry[f"{key}_ts"] = when
    return entry
