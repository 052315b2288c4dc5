# SPDX-License-Identifier: GPL-3.0-or-later
"""The scheduling core: what to start, skip, delay, retry or time out, and when to look again.

Pure: it makes no OS calls and never reads a clock. Every method takes *now*
(epoch seconds) from its caller, so tests can drive it through simulated weeks.
The caller starts processes for ``START`` decisions and reports back through
:meth:`Scheduler.finished`.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import tzinfo

from mirror.i18n import _
from mirror.policy import DELAY_SECONDS, Conditions, refusal
from mirror.task import GeneralSettings, TaskSpec
from mirror.taskqueue import RETRY, RUN, SYSTEM, TIMEOUT, QueueEntry, TaskQueue
from mirror.zoneoffsets import offsets_for

START = "start"
SKIP = "skip"
DELAY = "delay"
WAIT = "wait"
EXPIRE = "timeout"
SYSTEM_DUE = "system"


@dataclass(frozen=True)
class Decision:
    """What the core decided about one due entry.

    ``action`` is START (run the task now), SKIP (it is still running), DELAY
    (admission refused it), WAIT (another task is writing its localdir; it
    starts when that one ends), EXPIRE (its timeout passed: kill it) or SYSTEM
    (a system entry is due). ``next_due`` is when the task is looked at again.
    """

    action: str
    name: str
    kind: str
    due: float
    reason: str = ""
    next_due: float | None = None


class Scheduler:
    """Queues runs of enabled tasks by their schedules; decides what happens when they are due."""

    def __init__(self, tasks: Iterable[TaskSpec], general: GeneralSettings, zone: tzinfo,
                 now: float) -> None:
        self.general = general
        self.zone = zone
        self.offsets = offsets_for(zone)
        self.queue = TaskQueue()
        self.tasks: dict[str, TaskSpec] = {}
        self.running: set[str] = set()
        # Removed by a reload while running: kept until the run ends, then forgotten.
        self.retired: dict[str, TaskSpec] = {}
        # localdir → the running task writing it; and who waits for it to finish.
        self._writers: dict[str, str] = {}
        self._holding: dict[str, str] = {}  # running task → the localdir it started with
        self._waiting: dict[str, list[str]] = {}
        for task in tasks:
            self.tasks[task.name] = task
            if task.enabled:
                self._queue_next_run(task, now)

    def next_scheduled(self, task: TaskSpec, after: float) -> float:
        """The task's first scheduled time strictly after *after* (epoch seconds)."""
        return task.schedule.next_instant(after, self.offsets)

    def seconds_until_next(self, now: float) -> float | None:
        """How long the caller may sleep: 0 if something is due, None if the queue is empty."""
        head = self.queue.peek()
        return None if head is None else max(0.0, head.due - now)

    def due(self, now: float, conditions: Conditions) -> list[Decision]:
        """Take every entry due at *now* and decide about each, in queue order.

        Args:
            now: the current time, epoch seconds.
            conditions: load, HTTP connections (read once for this pass); its
                ``running`` is ignored in favour of the core's own count.

        Returns:
            The decisions; for START the task now counts as running.
        """
        decisions = []
        for entry in self.queue.pop_due(now):
            if entry.kind == TIMEOUT:
                decisions.append(Decision(EXPIRE, entry.name, entry.kind, entry.due))
            elif entry.kind == SYSTEM:
                decisions.append(Decision(SYSTEM_DUE, entry.name, entry.kind, entry.due))
            elif entry.name in self.tasks:
                decision = self._decide_run(entry, now, conditions)
                if decision is not None:
                    decisions.append(decision)
        return decisions

    def _decide_run(self, entry: QueueEntry, now: float, conditions: Conditions) -> Decision | None:
        task = self.tasks[entry.name]
        scheduled = self.next_scheduled(task, now)
        if entry.kind == RUN:
            self.queue.push(scheduled, task.priority, RUN, task.name)
        if task.name in self.running:
            if entry.kind == RETRY:
                return None
            return Decision(SKIP, task.name, entry.kind, entry.due,
                            _("still running; next run at its next scheduled time"), scheduled)
        writer = self.writer_of(task)
        if writer is not None:
            waiting = self._waiting.setdefault(writer, [])
            if task.name not in waiting:
                waiting.append(task.name)
            return Decision(WAIT, task.name, entry.kind, entry.due,
                            _("{other} is writing {localdir}; starts when it ends").format(
                                other=writer, localdir=task.localdir), None)
        current = Conditions(conditions.load, conditions.http_connections, len(self.running))
        reason = refusal(task.priority, current, self.general)
        if reason is not None:
            delayed = now + DELAY_SECONDS
            if delayed < scheduled:
                self.queue.push(delayed, task.priority, entry.kind, task.name)
            return Decision(DELAY, task.name, entry.kind, entry.due, reason,
                            min(delayed, scheduled))
        self._mark_started(task, now)
        return Decision(START, task.name, entry.kind, entry.due, next_due=scheduled)

    def writer_of(self, task: TaskSpec) -> str | None:
        """The other running task that writes *task*'s localdir, if any."""
        if task.localdir is None:
            return None
        writer = self._writers.get(task.localdir)
        return writer if writer != task.name else None

    def start_now(self, name: str, now: float) -> None:
        """Record a run started outside the schedule (an admin's ``--run``).

        Schedules and load limits do not apply, but a task never runs twice at
        once and never writes a localdir another running task writes.

        Raises:
            KeyError: *name* is not a known task.
            ValueError: the task is already running, or its localdir is busy.
        """
        task = self.tasks[name]
        if name in self.running:
            raise ValueError(_("{name} is already running").format(name=name))
        writer = self.writer_of(task)
        if writer is not None:
            raise ValueError(_("{other} is running and writes the same localdir {localdir}")
                             .format(other=writer, localdir=task.localdir))
        self._mark_started(task, now)

    def _mark_started(self, task: TaskSpec, now: float) -> None:
        self.running.add(task.name)
        if task.localdir is not None:
            self._writers[task.localdir] = task.name
            self._holding[task.name] = task.localdir
        self.queue.cancel(RETRY, task.name)
        if task.timeout:
            self.queue.push(now + task.timeout, task.priority, TIMEOUT, task.name)

    def finished(self, name: str, now: float, succeeded: bool,
                 may_retry: bool = True) -> float | None:
        """Record the end of *name*'s run.

        After a failure with ``autoretry`` set (and *may_retry*: not for a run an
        admin cancelled or a stop ended), a retry of an enabled task is queued at
        now + autoretry if that falls before the next scheduled run.

        Returns:
            The retry time, or None when no retry was queued.
        """
        self.running.discard(name)
        self.queue.cancel(TIMEOUT, name)
        self.retired.pop(name, None)
        held = self._holding.pop(name, None)
        if held is not None and self._writers.get(held) == name:
            del self._writers[held]
        for waiting in self._waiting.pop(name, []):
            queued = self.tasks.get(waiting)
            if queued is not None and queued.enabled and waiting not in self.running:
                self.queue.push(now, queued.priority, RUN, waiting)
        task = self.tasks.get(name)
        if task is None or succeeded or not may_retry or not task.enabled or not task.autoretry:
            return None
        retry_at = now + task.autoretry
        next_run = self.queue.get(RUN, name)
        if next_run is not None and retry_at >= next_run.due:
            return None
        self.queue.push(retry_at, task.priority, RETRY, name)
        return retry_at

    def schedule_system(self, name: str, due: float, priority: int = 1) -> None:
        """Queue a system entry (an internal job such as log cleaning) at *due*."""
        self.queue.push(due, priority, SYSTEM, name)

    def reload(self, tasks: Iterable[TaskSpec], general: GeneralSettings, now: float) -> None:
        """Apply a new config without touching running processes.

        New tasks are queued; removed tasks leave the queue (a running one
        finishes and is then forgotten); a changed task takes effect from its
        next run (its running process keeps the settings it started with).
        """
        new = {task.name: task for task in tasks}
        for name, old in self.tasks.items():
            if name not in new:
                for kind in (RUN, RETRY):
                    self.queue.cancel(kind, name)
                if name in self.running:
                    self.retired[name] = old
        self.general = general
        old_tasks, self.tasks = self.tasks, new
        for name, task in new.items():
            before = old_tasks.get(name)
            if not task.enabled:
                self.queue.cancel(RUN, name)
                self.queue.cancel(RETRY, name)
            elif before is None or not before.enabled or before.time != task.time \
                    or self.queue.get(RUN, name) is None:
                self._queue_next_run(task, now)
            elif before.priority != task.priority:
                entry = self.queue.get(RUN, name)
                self.queue.push(entry.due, task.priority, RUN, name)  # type: ignore[union-attr]

    def clock_jumped(self, delta: float) -> None:
        """The wall clock moved by *delta* seconds more than real time did.

        Timeouts and retries are durations, so they move with it; scheduled
        runs are wall times and stay. A run due in a skipped stretch therefore
        starts at once (once), and none runs twice after a step back.
        """
        for entry in self.queue.entries():
            if entry.kind in (TIMEOUT, RETRY):
                self.queue.push(entry.due + delta, entry.priority, entry.kind, entry.name)

    def _queue_next_run(self, task: TaskSpec, now: float) -> None:
        self.queue.push(self.next_scheduled(task, now), task.priority, RUN, task.name)
