# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-only snapshots of the daemon: the queue and each task's status, as JSON-ready dicts."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo

from mirror.localzone import iso
from mirror.runs import Run
from mirror.scheduler import Scheduler
from mirror.state import TaskState
from mirror.taskqueue import RUN

IDLE = "idle"
RUNNING = "running"
DISABLED = "disabled"


def queue_snapshot(core: Scheduler, zone: tzinfo) -> list[dict[str, object]]:
    """The queue in due order: name, kind, due, priority."""
    stamps: dict[float, str | None] = {}  # tasks often share due times; format each once
    snapshot = []
    for entry in core.queue.entries():
        due = stamps.get(entry.due)
        if due is None:
            due = stamps[entry.due] = iso(entry.due, zone)
        snapshot.append({"name": entry.name, "kind": entry.kind, "due": due,
                         "priority": entry.priority})
    return snapshot


def task_status(name: str, core: Scheduler, runs: Mapping[str, Run],
                states: Mapping[str, TaskState], zone: tzinfo) -> dict[str, object]:
    """One task's status: state, pid, stage, started, last result, next run, upstream."""
    task = core.tasks.get(name) or core.retired.get(name)
    run = runs.get(name)
    state = states.get(name, TaskState())
    next_run = core.queue.get(RUN, name)
    if run is not None:
        condition = RUNNING
    elif task is not None and not task.enabled:
        condition = DISABLED
    else:
        condition = IDLE
    return {
        "state": condition,
        "pid": run.pid if run else None,
        "stage": run.stage if run else None,
        "stages": run.stages if run else None,
        "started": iso(run.started, zone) if run else None,
        "upstream": run.upstream if run else state.upstream,
        "last_start": iso(state.last_start, zone),
        "last_end": iso(state.last_end, zone),
        "duration": state.duration,
        "last_result": state.result,
        "exit_code": state.exit_code,
        "signal": state.signal,
        "last_success": iso(state.last_success, zone),
        "consecutive_failures": state.consecutive_failures,
        "next_run": iso(next_run.due, zone) if next_run else None,
    }


def status_snapshot(core: Scheduler, runs: Mapping[str, Run], states: Mapping[str, TaskState],
                    zone: tzinfo) -> dict[str, dict[str, object]]:
    """Every task's status, keyed by name (tasks removed by a reload show while they run)."""
    names = list(core.tasks) + [name for name in core.retired if name not in core.tasks]
    return {name: task_status(name, core, runs, states, zone) for name in names}
