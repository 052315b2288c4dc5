# SPDX-License-Identifier: GPL-3.0-or-later
"""The scheduling core: what to start, skip, delay, retry or time out, and when to look again.

Pure: it makes no OS calls and never reads a clock. Every method takes *now*
(epoch seconds) from its caller, so tests can drive it through simulated weeks.
The caller starts processes for ``START`` decisions and reports back through
:meth:`SchedulingCore.finished`. Localdirs are compared through a path resolver the
caller passes in (the daemon passes ``os.path.realpath``; the default,
``os.path.normpath``, reads nothing from the disk).
"""
from __future__ import annotations

import os.path
from collections.abc import Callable, Iterable, Iterator
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


@dataclass(frozen=True)
class Holding:
    """The localdir a running task writes: as configured when the run started, and resolved
    (its real path) at that moment. A run keeps it until it ends, whatever changes meanwhile."""

    name: str
    localdir: str
    resolved: str


def _inside(path: str, directory: str) -> bool:
    """Whether the resolved *path* is *directory* or below it."""
    if path == directory:
        return True
    prefix = directory if directory.endswith("/") else directory + "/"
    return path.startswith(prefix)


class SchedulingCore:
    """Queues runs of enabled tasks by their schedules; decides what happens when they are due."""

    def __init__(self, tasks: Iterable[TaskSpec], general: GeneralSettings, zone: tzinfo,
                 now: float, resolve_path: Callable[[str], str] = os.path.normpath) -> None:
        """Queue the first run of every enabled task.

        Args:
            tasks: the valid tasks.
            general: the ``[general]`` settings.
            zone: the local time zone the schedules are read in.
            now: the current time, epoch seconds.
            resolve_path: turns a localdir into the path two localdirs are compared
                by (aliases through symlinks, nesting). The daemon passes
                ``os.path.realpath``; the default ``os.path.normpath`` touches no
                disk. It is called when a run is decided or started, once per run.
        """
        self.general = general
        self.zone = zone
        self.offsets = offsets_for(zone)
        self.resolve_path = resolve_path
        self.queue = TaskQueue()
        self.tasks: dict[str, TaskSpec] = {}
        self.running: set[str] = set()
        # Removed by a reload while running: kept until the run ends, then forgotten.
        self.retired: dict[str, TaskSpec] = {}
        # Running task → the localdir its run holds (resolved when it started); and who
        # waits for that run to end.
        self._holding: dict[str, Holding] = {}
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

    def due(self, now: float, conditions: Conditions) -> Iterator[Decision]:
        """Take every entry due at *now* and decide about each, in queue order.

        The entries are taken at once; each decision is made when the caller asks for
        it, so that a caller starting a burst of tasks starts the first one after one
        decision rather than after all of them.

        Args:
            now: the current time, epoch seconds.
            conditions: load, HTTP connections (read once for this pass); its
                ``running`` is ignored in favour of the core's own count.

        Yields:
            The decisions; for START the task counts as running from then on.
        """
        for entry in self.queue.pop_due(now):
            if entry.kind == TIMEOUT:
                yield Decision(EXPIRE, entry.name, entry.kind, entry.due)
            elif entry.kind == SYSTEM:
                yield Decision(SYSTEM_DUE, entry.name, entry.kind, entry.due)
            elif entry.name in self.tasks:
                decision = self._decide_run(entry, now, conditions)
                if decision is not None:
                    yield decision

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
        resolved = self._resolve(task)
        writer = self._holder_for(task.name, resolved)
        if writer is not None:
            waiting = self._waiting.setdefault(writer.name, [])
            if task.name not in waiting:
                waiting.append(task.name)
            return Decision(WAIT, task.name, entry.kind, entry.due,
                            _wait_reason(task, resolved, writer), None)
        current = Conditions(conditions.load, conditions.http_connections, len(self.running))
        reason = refusal(task.priority, current, self.general)
        if reason is not None:
            delayed = now + DELAY_SECONDS
            if delayed < scheduled:
                self.queue.push(delayed, task.priority, entry.kind, task.name)
            return Decision(DELAY, task.name, entry.kind, entry.due, reason,
                            min(delayed, scheduled))
        self._mark_started(task, resolved, now)
        return Decision(START, task.name, entry.kind, entry.due, next_due=scheduled)

    def writer_of(self, task: TaskSpec) -> str | None:
        """The other running task whose localdir is *task*'s localdir, an alias of it, or a
        directory above or below it (compared after ``resolve_path``), if any.

        Costs one resolve and a look at each running task, never a pass over all tasks.
        """
        holder = self._holder_for(task.name, self._resolve(task))
        return None if holder is None else holder.name

    def _resolve(self, task: TaskSpec) -> str | None:
        """*task*'s localdir through ``resolve_path`` (None without a localdir).

        A resolver that fails (an unreadable directory on the way) falls back to
        the normalised path, so that a decision is never lost.
        """
        if task.localdir is None:
            return None
        try:
            return self.resolve_path(task.localdir)
        except (OSError, ValueError):
            return os.path.normpath(task.localdir)

    def _holder_for(self, name: str, resolved: str | None) -> Holding | None:
        """The run (of a task other than *name*) holding *resolved*, an ancestor of it or a
        descendant of it."""
        if resolved is None:
            return None
        for holding in self._holding.values():
            if holding.name != name and (_inside(resolved, holding.resolved)
                                         or _inside(holding.resolved, resolved)):
                return holding
        return None

    def start_now(self, name: str, now: float) -> None:
        """Record a run started outside the schedule (an admin's ``--run``).

        Schedules and load limits do not apply, but a task never runs twice at
        once and never writes a localdir another running task writes (the same
        directory under another name, or a directory above or below it).

        Raises:
            KeyError: *name* is not a known task.
            ValueError: the task is already running, or its localdir is busy; the
                message names the other task and both directories.
        """
        task = self.tasks[name]
        if name in self.running:
            raise ValueError(_("{name} is already running").format(name=name))
        resolved = self._resolve(task)
        writer = self._holder_for(name, resolved)
        if writer is not None:
            raise ValueError(_refusal(task, resolved, writer))
        self._mark_started(task, resolved, now)

    def _mark_started(self, task: TaskSpec, resolved: str | None, now: float) -> None:
        self.running.add(task.name)
        if task.localdir is not None and resolved is not None:
            self._holding[task.name] = Holding(task.name, task.localdir, resolved)
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
        self._holding.pop(name, None)
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


def _shown(localdir: str, resolved: str) -> str:
    """A localdir for a message, with its real path when that reads differently."""
    if os.path.normpath(localdir) == resolved:
        return localdir
    return f"{localdir} (→ {resolved})"


def _conflict(task: TaskSpec, resolved: str | None, holding: Holding) -> tuple[str, dict[str, str]]:
    """How *holding*'s directory stands to *task*'s, and the fields of a message about it.

    Returns:
        ``(relation, fields)``: relation is ``written-alike`` (the same localdir, written the
        same way), ``same`` (the same directory under another name), ``inside`` (the running
        task writes below *task*'s directory) or ``contains`` (above it); fields are
        ``other``, ``localdir``, ``mine`` and ``theirs`` (each directory with its real path
        when that reads differently).
    """
    localdir = task.localdir or ""
    resolved = resolved or os.path.normpath(localdir)
    fields = {"other": holding.name, "localdir": localdir, "mine": _shown(localdir, resolved),
              "theirs": _shown(holding.localdir, holding.resolved)}
    if holding.resolved == resolved:
        same_text = os.path.normpath(holding.localdir) == os.path.normpath(localdir)
        return ("written-alike" if same_text else "same"), fields
    return ("inside" if _inside(holding.resolved, resolved) else "contains"), fields


def _wait_reason(task: TaskSpec, resolved: str | None, holding: Holding) -> str:
    """Why *task* waits for *holding*'s run (a WAIT decision's reason), naming both
    directories when they differ."""
    relation, fields = _conflict(task, resolved, holding)
    if relation == "written-alike":
        message = _("{other} is writing {localdir}; starts when it ends")
    elif relation == "same":
        message = _("{other} is writing {theirs}, the same directory as {mine}; "
                    "starts when it ends")
    elif relation == "inside":
        message = _("{other} is writing {theirs}, which is inside {mine}; starts when it ends")
    else:
        message = _("{other} is writing {theirs}, which contains {mine}; starts when it ends")
    return message.format(**fields)


def _refusal(task: TaskSpec, resolved: str | None, holding: Holding) -> str:
    """Why ``--run`` cannot start *task* while *holding*'s run goes on, naming both
    directories when they differ."""
    relation, fields = _conflict(task, resolved, holding)
    if relation == "written-alike":
        message = _("{other} is running and writes the same localdir {localdir}")
    elif relation == "same":
        message = _("{other} is running and writes the same localdir {theirs} as {mine}")
    elif relation == "inside":
        message = _("{other} is running and writes {theirs}, which is inside the localdir "
                    "{mine}")
    else:
        message = _("{other} is running and writes {theirs}, which contains the localdir "
                    "{mine}")
    return message.format(**fields)
