# SPDX-License-Identifier: GPL-3.0-or-later
"""Immutable views of the daemon for plugins: every task, the queue, the settings that matter.

Taken on the loop thread (through :mod:`mirror.loopcalls`), then read freely
from any thread. Times are epoch seconds; None means never (or not planned).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo

from mirror.core import SchedulingCore
from mirror.history import RunResult, TaskHistory
from mirror.task import Schedule
from mirror.taskqueue import QueueKind
from mirror.textenum import TextEnum


class TaskCondition(TextEnum):
    """What a task is doing, as clients and plugins are shown it."""

    RUNNING = "running"  # a run is in progress
    IDLE = "idle"  # enabled, waiting for its next run
    DISABLED = "disabled"  # enabled = no (it runs only when asked to)


# The names other modules import.
IDLE = TaskCondition.IDLE
RUNNING = TaskCondition.RUNNING
DISABLED = TaskCondition.DISABLED


@dataclass(frozen=True)
class TaskView:
    """One task as plugins see it."""

    name: str
    type: str
    enabled: bool
    state: TaskCondition
    upstreams: tuple[str, ...]
    upstream: str | None  # of the current run, else of the last one
    localdir: str | None
    schedule: str
    timing: Schedule  # what ``schedule`` says, parsed
    pid: int | None
    stage: int | None
    stages: int | None
    started: float | None
    log_path: str | None  # of the current run
    last_start: float | None
    last_end: float | None
    last_success: float | None
    duration: float | None
    result: RunResult | None
    exit_code: int | None
    signal: str | None
    consecutive_failures: int
    failures_total: int
    size: int | None
    received_bytes: int | None  # by the last run's sync stages, when rsync --stats said
    next_run: float | None

    @property
    def period_seconds(self) -> int:
        """The longest wait between two runs of the schedule, in seconds; computed on the
        first call (about a millisecond for a cron expression), not on the loop thread."""
        return self.timing.period_seconds

    @property
    def shown_upstream(self) -> str | None:
        """The upstream to show: the current or last run's, else the first configured."""
        return self.upstream or (self.upstreams[0] if self.upstreams else None)


@dataclass(frozen=True)
class QueueView:
    """One queue entry: run, retry, timeout or system."""

    name: str
    kind: QueueKind
    due: float
    priority: int


@dataclass(frozen=True)
class Snapshot:
    """The daemon at one moment; ``tasks`` are in name order."""

    taken: float
    zone: tzinfo
    tasks: tuple[TaskView, ...]
    queue: tuple[QueueView, ...]
    logdir: str
    emails: tuple[str, ...]

    def task(self, name: str) -> TaskView | None:
        """The task called *name*, or None."""
        return next((task for task in self.tasks if task.name == name), None)


def task_view(name: str, core: SchedulingCore, states: Mapping[str, TaskHistory]) -> TaskView:
    """Task *name* (configured, or removed by a reload but still running) as of now.

    Args:
        name: the task.
        core: where the task, its run in progress and its next run are.
        states: each task's history.

    Raises:
        KeyError: no such task.
    """
    spec = core.spec(name)
    run = core.run_of(name)
    state = states.get(name) or TaskHistory()
    condition = RUNNING if run else (IDLE if spec.enabled else DISABLED)
    return TaskView(
        name=name, type=spec.type, enabled=spec.enabled, state=condition,
        upstreams=tuple(spec.upstreams), upstream=run.upstream if run else state.upstream,
        localdir=spec.localdir, schedule=spec.time,
        timing=spec.schedule,
        pid=run.pid if run else None, stage=run.stage if run else None,
        stages=run.stages if run else None, started=run.started if run else None,
        log_path=run.log_path if run else None, last_start=state.last_start,
        last_end=state.last_end, last_success=state.last_success, duration=state.duration,
        result=state.result, exit_code=state.exit_code, signal=state.signal,
        consecutive_failures=state.consecutive_failures,
        failures_total=state.failures_total, size=state.size,
        received_bytes=state.received_bytes,
        next_run=core.next_run(name))


def take_snapshot(core: SchedulingCore, states: Mapping[str, TaskHistory], zone: tzinfo,
                  now: float) -> Snapshot:
    """Copy what plugins may see, as of *now*. Loop thread only."""
    tasks = tuple(task_view(name, core, states) for name in sorted(core.known_names()))
    return Snapshot(now, zone, tasks, queue_views(core), core.general.logdir,
                    core.general.emails)


def queue_views(core: SchedulingCore) -> tuple[QueueView, ...]:
    """The queue, in due order."""
    return tuple(QueueView(entry.name, entry.kind, entry.due, entry.priority)
                 for entry in core.entries())
