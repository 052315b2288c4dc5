# SPDX-License-Identifier: GPL-3.0-or-later
"""The scheduling core: what to start, skip, delay, retry or time out, and when to look again;
which upstream and stages a run uses, and what each stage's end means.

Pure: it makes no OS calls and never reads a clock. Every method takes *now*
(epoch seconds) from its caller, so tests can drive it through simulated weeks.

A run goes: a ``START`` decision from :meth:`SchedulingCore.due` (or
:meth:`SchedulingCore.start_now`) reserves the task; :meth:`SchedulingCore.run_started`
plans the run (upstream, task log, stages); after each stage the caller reports
:meth:`SchedulingCore.stage_ended` and gets :class:`NextStage` or :class:`RunEnd` (result,
failure counters, next upstream, retry time), which it records in the task's history.
The core is the one record of what runs. Localdirs are compared through a path resolver the
caller passes in (the daemon passes ``os.path.realpath``; the default,
``os.path.normpath``, reads nothing from the disk).
"""
from __future__ import annotations

import math
import os.path
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Union

from mirror.checkfiles import fetched_path
from mirror.cron import CronSchedule
from mirror.history import RunResult, TaskHistory
from mirror.hooks import hook_stage
from mirror.i18n import _
from mirror.policy import DELAY_SECONDS, Conditions, refusal
from mirror.runs import Ending, Run, RunKind, RunRecord, log_path_for
from mirror.task import GeneralSettings, Stage, StageRole, TaskSpec
from mirror.taskqueue import RETRY, RUN, SYSTEM, TIMEOUT, QueueEntry, QueueKind, TaskQueue
from mirror.textenum import TextEnum
from mirror.zoneoffsets import offsets_for


class Action(TextEnum):
    """What the core decided about a due queue entry."""

    START = "start"  # run the task now
    SKIP = "skip"  # it is still running; its next scheduled run is queued
    DELAY = "delay"  # admission refused it; it is looked at again later
    WAIT = "wait"  # another run writes its localdir; it starts when that one ends
    EXPIRE = "timeout"  # its timeout passed: end the run
    SYSTEM_DUE = "system"  # a system entry is due


# The names other modules import.
START = Action.START
SKIP = Action.SKIP
DELAY = Action.DELAY
WAIT = Action.WAIT
EXPIRE = Action.EXPIRE
SYSTEM_DUE = Action.SYSTEM_DUE


@dataclass(frozen=True)
class SystemEntry:
    """A recurring internal job (such as cleaning old task logs) a plugin registered."""

    name: str
    schedule: CronSchedule
    priority: int


@dataclass(frozen=True)
class Decision:
    """What the core decided about one due entry.

    ``action`` says what to do; ``kind`` is the queue entry's kind; ``next_due`` is when the
    task is looked at again. A START has reserved the task: the caller begins the run with
    :meth:`SchedulingCore.run_started`. A SYSTEM_DUE carries its ``system`` entry (None for a
    name no entry was registered under), already queued again at its next time.
    """

    action: Action
    name: str
    kind: QueueKind
    due: float
    reason: str = ""
    next_due: float | None = None
    system: SystemEntry | None = None


@dataclass(frozen=True)
class NextStage:
    """The run goes on: start ``run.current`` (the core has moved ``run.stage`` on)."""

    run: Run


@dataclass(frozen=True)
class RunEnd:
    """A run ended, and what it changes in the task's history.

    ``consecutive_failures``, ``failures_total`` and ``upstream_index`` are the values to
    record (``upstream_index`` is the next run's upstream: moved on after a failure when the
    task has more than one). ``retry_at`` is when the queued retry is due, if one was queued.
    ``forget`` says the task was removed by a reload while it ran: drop its history.
    """

    run: Run
    result: RunResult
    exit_code: int | None
    ended: float
    duration: float
    previous_failures: int
    consecutive_failures: int
    failures_total: int
    upstream_index: int
    retry_at: float | None
    forget: bool

    @property
    def name(self) -> str:
        return self.run.task.name


StageDecision = Union[NextStage, RunEnd]


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


NO_HISTORY = TaskHistory()


class SchedulingCore:
    """Queues runs of enabled tasks by their schedules; decides what happens when they are due,
    which upstream and stages a run uses, and what its end changes."""

    def __init__(self, tasks: Iterable[TaskSpec], general: GeneralSettings, zone: tzinfo,
                 now: float, resolve_path: Callable[[str], str] = os.path.normpath,
                 histories: Mapping[str, TaskHistory] | None = None,
                 checkdir: str | None = None) -> None:
        """Queue the first run of every enabled task.

        Args:
            tasks: the valid tasks.
            general: the ``[general]`` settings; the core holds the current ones (``general``)
                for everyone, and :meth:`reload` replaces them.
            zone: the local time zone the schedules are read in.
            now: the current time, epoch seconds.
            resolve_path: turns a localdir into the path two localdirs are compared
                by (aliases through symlinks, nesting). The daemon passes
                ``os.path.realpath``; the default ``os.path.normpath`` touches no
                disk. It is called when a run is decided or started, once per run.
            histories: each task's recorded history, read (never written) for the upstream a
                run starts from and the failure counters its end continues; the caller
                records what :class:`RunEnd` says. Empty by default.
            checkdir: mirrord's private directory where a task's ``checkfile`` is fetched
                (:mod:`mirror.checkfiles`); None: no run checks its upstream first.
        """
        self.general = general
        self.zone = zone
        self.offsets = offsets_for(zone)
        self.resolve_path = resolve_path
        self.histories: Mapping[str, TaskHistory] = {} if histories is None else histories
        self.checkdir = checkdir
        self.queue = TaskQueue()
        self.tasks: dict[str, TaskSpec] = {}
        # The one record of what runs: a task decided to start (or started with --run) is
        # here from that moment, with its Run once the caller began it, until its end.
        self._running: dict[str, Run | None] = {}
        # Removed by a reload while running: kept until the run ends, then forgotten.
        self.retired: dict[str, TaskSpec] = {}
        # Running task → the localdir its run holds (resolved when it started); and who
        # waits for that run to end.
        self._holding: dict[str, Holding] = {}
        self._waiting: dict[str, list[str]] = {}
        self._system: dict[str, SystemEntry] = {}
        for task in tasks:
            self.tasks[task.name] = task
            if task.enabled:
                self._queue_next_run(task, now)
                self._queue_retry_from_history(task, now)

    # --- views (for snapshots and clients) ---------------------------------------------------

    @property
    def running(self) -> Mapping[str, Run | None]:
        """The running tasks (read-only; ``name in core.running``, ``len(core.running)``)."""
        return self._running

    def run_of(self, name: str) -> Run | None:
        """*name*'s run in progress, if it is running and its run has begun."""
        return self._running.get(name)

    def runs(self) -> list[Run]:
        """Every run in progress."""
        return [run for run in self._running.values() if run is not None]

    def known_names(self) -> list[str]:
        """The configured tasks in config order, then those a reload removed that still run."""
        return list(self.tasks) + [name for name in self.retired if name not in self.tasks]

    def spec(self, name: str) -> TaskSpec:
        """Task *name*, configured or removed by a reload but still running.

        Raises:
            KeyError: no such task.
        """
        task = self.tasks.get(name)
        return task if task is not None else self.retired[name]

    def next_run(self, name: str) -> float | None:
        """When *name*'s next scheduled (or delayed) run is due, if one is queued."""
        entry = self.queue.get(RUN, name)
        return None if entry is None else entry.due

    def entries(self) -> list[QueueEntry]:
        """Every queued entry in due order (a copy)."""
        return self.queue.entries()

    # --- scheduling -------------------------------------------------------------------------

    def next_scheduled(self, task: TaskSpec, after: float) -> float:
        """The task's first scheduled time strictly after *after* (epoch seconds), its
        ``randomdelay`` offset included; for an ``interval`` task, *after* is the end of its
        last run."""
        return task.next_slot(after, self.offsets)

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
            The decisions; for START the task counts as running from then on. A due
            system entry is queued again at its next time before it is yielded.
        """
        for entry in self.queue.pop_due(now):
            if entry.kind == TIMEOUT:
                yield Decision(EXPIRE, entry.name, entry.kind, entry.due)
            elif entry.kind == SYSTEM:
                system = self._system.get(entry.name)
                if system is not None:
                    self.queue.push(system.schedule.next_instant(now, self.offsets),
                                    system.priority, SYSTEM, system.name)
                yield Decision(SYSTEM_DUE, entry.name, entry.kind, entry.due, system=system)
            elif entry.name in self.tasks:
                decision = self._decide_run(entry, now, conditions)
                if decision is not None:
                    yield decision

    def _decide_run(self, entry: QueueEntry, now: float, conditions: Conditions) -> Decision | None:
        task = self.tasks[entry.name]
        from_end = task.schedule.from_end  # the next run is queued when this one ends
        scheduled = math.inf if from_end else self.next_scheduled(task, now)
        if entry.kind == RUN and not from_end:
            self.queue.push(scheduled, task.priority, RUN, task.name)
        if task.name in self._running:
            if entry.kind == RETRY:
                return None
            if from_end:
                return Decision(SKIP, task.name, entry.kind, entry.due,
                                _("still running; next run one interval after it ends"))
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
        current = Conditions(conditions.load, conditions.http_connections, len(self._running))
        reason = refusal(task.priority, current, self.general)
        if reason is not None:
            delayed = now + DELAY_SECONDS
            if delayed < scheduled:
                self.queue.push(delayed, task.priority, entry.kind, task.name)
            return Decision(DELAY, task.name, entry.kind, entry.due, reason,
                            min(delayed, scheduled))
        self._mark_started(task, resolved, now)
        return Decision(START, task.name, entry.kind, entry.due,
                        next_due=None if from_end else scheduled)

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
        if name in self._running:
            raise ValueError(_("{name} is already running").format(name=name))
        resolved = self._resolve(task)
        writer = self._holder_for(name, resolved)
        if writer is not None:
            raise ValueError(_refusal(task, resolved, writer))
        self._mark_started(task, resolved, now)

    def _mark_started(self, task: TaskSpec, resolved: str | None, now: float) -> None:
        self._running[task.name] = None
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
        self._running.pop(name, None)
        self.queue.cancel(TIMEOUT, name)
        self.retired.pop(name, None)
        self._holding.pop(name, None)
        for waiting in self._waiting.pop(name, []):
            queued = self.tasks.get(waiting)
            if queued is not None and queued.enabled and waiting not in self._running:
                self.queue.push(now, queued.priority, RUN, waiting)
        task = self.tasks.get(name)
        if task is not None and task.enabled and task.schedule.from_end:
            self.queue.push(self.next_scheduled(task, now), task.priority, RUN, name)
        if task is None or succeeded or not may_retry or not task.enabled or not task.autoretry:
            return None
        retry_at = now + task.autoretry
        next_run = self.queue.get(RUN, name)
        if next_run is not None and retry_at >= next_run.due:
            return None
        self.queue.push(retry_at, task.priority, RETRY, name)
        return retry_at

    # --- runs: their stages and their ends ------------------------------------------------

    def run_started(self, name: str, kind: RunKind, now: float) -> Run:
        """Begin the run of *name* that a START decision or :meth:`start_now` reserved.

        The run uses the upstream its history points at (``upstream_index``, wrapping), its
        task log is ``LOGDIR/NAME.log.DATE`` for *now*, and its stages are what the task
        gives for that upstream and log.

        Returns:
            The run, at stage 1; the caller starts ``run.current``.

        Raises:
            KeyError: *name* was not reserved (or has begun already).
        """
        if name not in self._running or self._running[name] is not None:
            raise KeyError(name)
        task = self.spec(name)
        history = self.histories.get(name, NO_HISTORY)
        index = history.upstream_index % len(task.upstreams) if task.upstreams else 0
        upstream = task.upstreams[index] if task.upstreams else None
        log_path = log_path_for(self.general.logdir, name, now, self.zone)
        run = Run(task=task, kind=RunKind(kind),
                  plan=self._plan(task, RunKind(kind), index, upstream, log_path),
                  upstream=upstream, upstream_index=index, started=now, log_path=log_path)
        self._running[name] = run
        return run

    def _plan(self, task: TaskSpec, kind: RunKind, index: int, upstream: str | None,
              log_path: str) -> list[Stage]:
        """A run's stages: ``exec_before``, the fetch of the checkfile (not for an admin's
        ``--run``, which always syncs), then the kind's own. The hooks after the sync are
        added when it ends (:meth:`stage_ended`), since they are told how it ended."""
        plan = []
        before = hook_stage(task, StageRole.BEFORE, upstream, log_path)
        if before is not None:
            plan.append(before)
        if (self.checkdir is not None and kind is not RunKind.MANUAL
                and task.kind.checkfile(task)):
            check = task.kind.check_stage(task, index, fetched_path(self.checkdir, task.name))
            if check is not None:
                plan.append(check)
        return plan + task.stages(index, log_path)

    def adopt(self, record: RunRecord, now: float, trusted: bool = False) -> Run:
        """Take over the run *record* describes, left by a mirrord that ran before this one
        (``-s restart``, or a crash): it counts as running, holds a localdir, and its timeout
        counts from its original start. It goes on with the stages it was planned with.

        A *trusted* record (one the last image of this very process handed over) keeps its
        task log and localdir as recorded. Otherwise the state file may have been written by
        someone else (it may sit in a directory a less privileged user can write): the log is
        where the current ``logdir`` puts it, and the localdir held is the task's as
        configured now.

        Returns:
            The run, at the recorded stage; the caller watches its process.

        Raises:
            KeyError: the task is not configured (any more), or is running already.
        """
        task = self.tasks[record.name]
        if record.name in self._running:
            raise KeyError(record.name)
        self._running[task.name] = None
        self.queue.cancel(RETRY, task.name)
        if trusted:
            log_path = record.log_path
            if record.localdir is not None and record.resolved is not None:
                self._holding[task.name] = Holding(task.name, record.localdir, record.resolved)
        else:
            log_path = log_path_for(self.general.logdir, task.name, record.started, self.zone)
            resolved = self._resolve(task)
            if task.localdir is not None and resolved is not None:
                self._holding[task.name] = Holding(task.name, task.localdir, resolved)
        if task.timeout:
            self.queue.push(record.started + task.timeout, task.priority, TIMEOUT, task.name)
        run = Run(task=task, kind=record.kind, plan=list(record.plan), upstream=record.upstream,
                  upstream_index=record.upstream_index, started=record.started,
                  log_path=log_path, stage=record.stage, ending=record.ending,
                  pid=record.identity.pid, first_pid=record.first_pid,
                  stage_started=record.stage_started, run_id=record.identity.run_id,
                  identity=record.identity, outcome=record.outcome,
                  outcome_code=record.outcome_code, outcome_signal=record.outcome_signal,
                  traced=record.traced)
        self._running[task.name] = run
        return run

    def record_of(self, run: Run) -> RunRecord | None:
        """What the state file keeps of *run* (None before its stage's process is known)."""
        if run.identity is None:
            return None
        holding = self._holding.get(run.task.name)
        return RunRecord(name=run.task.name, kind=run.kind, plan=tuple(run.plan),
                         stage=run.stage, upstream=run.upstream,
                         upstream_index=run.upstream_index, started=run.started,
                         stage_started=run.stage_started, log_path=run.log_path,
                         first_pid=run.first_pid, identity=run.identity, ending=run.ending,
                         localdir=None if holding is None else holding.localdir,
                         resolved=None if holding is None else holding.resolved,
                         outcome=run.outcome, outcome_code=run.outcome_code,
                         outcome_signal=run.outcome_signal, traced=run.traced)

    def run_lost(self, name: str, result: RunResult, now: float) -> RunEnd:
        """*name*'s run ended without an exit status: its process was gone when mirrord
        started again (*result* INTERRUPTED), or it ended while adopted, not a child
        (UNATTENDED). A run mirrord was ending has the ending's result instead.

        Raises:
            KeyError: *name* has no run in progress.
        """
        run = self._running[name]
        if run is None:
            raise KeyError(name)
        role = run.current.role
        if run.ending is not None:
            result = run.ending.result
        elif role in (StageRole.BEFORE, StageRole.CHECK):
            result = RunResult.INTERRUPTED  # nothing was synced yet: nothing can have failed
        elif role is StageRole.ON_FAILURE and run.outcome is not None:
            result = run.outcome  # the sync's result is known; only the hook's is not
        return self._end(run, result, None, now)

    def end_requested(self, name: str, ending: Ending) -> Run | None:
        """Note that *name*'s run is being ended (timed out, cancelled, stopped, stalled); the
        first reason given is the one its result will say, except that a timeout, a cancel or
        a stop overrides a stall (no ``exec_on_failure`` then).

        Returns:
            The run, or None when *name* has no run in progress.
        """
        run = self._running.get(name)
        if run is not None and (run.ending is None or (run.ending is Ending.STALLED
                                                       and ending is not Ending.STALLED)):
            run.ending = ending
        return run

    def stage_ended(self, name: str, exit_code: int | None, now: float,
                    unchanged: bool = False) -> StageDecision:
        """The current stage of *name*'s run ended with *exit_code* (None: killed by a signal).

        What follows depends on the stage's role:

        * ``exec_before``: 0 goes on; anything else ends the run VETOED.
        * the checkfile's fetch: *unchanged* (the caller compared the file with the copy of
          the last success) ends the run UNCHANGED; changed, or not fetched (also when it
          stalled), goes on to the full sync.
        * a sync stage: success goes on to the next one; after the last one, or a failure,
          ``exec_on_success`` or ``exec_on_failure`` runs if set, else the run ends.
        * ``exec_on_success``: 0 ends the run SUCCESS; anything else ends it FAILED.
        * ``exec_on_failure``: the run ends as the sync did.

        A run being ended (timeout, cancel, stop) ends with that result at once, except a
        STALLED sync stage, after which ``exec_on_failure`` still runs.

        Returns:
            :class:`NextStage` (the run has moved on to it), or :class:`RunEnd`.

        Raises:
            KeyError: *name* has no run in progress.
        """
        run = self._running[name]
        if run is None:
            raise KeyError(name)
        role = run.current.role
        if run.ending is Ending.STALLED and role is StageRole.CHECK:
            run.ending = None  # the checkfile could not be fetched: the full sync runs
            return self._next(run)
        if run.ending is not None:
            result = run.ending.result
            if result is RunResult.STALLED and role is StageRole.SYNC:
                return self._after_sync(run, result, exit_code, now)
            if role in (StageRole.ON_SUCCESS, StageRole.ON_FAILURE):
                exit_code = run.outcome_code  # the sync's, not the hook's
            return self._end(run, result, exit_code, now)
        if role is StageRole.BEFORE:
            return (self._next(run) if exit_code == 0
                    else self._end(run, RunResult.VETOED, exit_code, now))
        if role is StageRole.CHECK:
            return (self._end(run, RunResult.UNCHANGED, exit_code, now)
                    if exit_code == 0 and unchanged else self._next(run))
        if role is StageRole.SYNC:
            if not run.task.succeeded(exit_code, self.general):
                return self._after_sync(run, RunResult.FAILED, exit_code, now)
            if run.stage < run.stages:
                return self._next(run)
            return self._after_sync(run, RunResult.SUCCESS, exit_code, now)
        if role is StageRole.ON_SUCCESS:
            return (self._end(run, RunResult.SUCCESS, run.outcome_code, now) if exit_code == 0
                    else self._end(run, RunResult.FAILED, exit_code, now))
        return self._end(run, run.outcome or RunResult.FAILED, run.outcome_code, now)

    @staticmethod
    def _next(run: Run) -> NextStage:
        run.stage += 1
        return NextStage(run)

    def _after_sync(self, run: Run, result: RunResult, exit_code: int | None,
                    now: float) -> StageDecision:
        """The sync ended with *result*: run the hook for it, if the task has one."""
        role = StageRole.ON_SUCCESS if result is RunResult.SUCCESS else StageRole.ON_FAILURE
        stage = hook_stage(run.task, role, run.upstream, run.log_path, result.value, exit_code)
        if stage is None:
            return self._end(run, result, exit_code, now)
        run.outcome, run.outcome_code = result, exit_code
        del run.plan[run.stage:]  # the sync stages a failure leaves out: the hook comes next
        run.plan.append(stage)
        run.stage = run.stages
        return NextStage(run)

    def stage_not_started(self, name: str, now: float) -> RunEnd:
        """The current stage of *name*'s run could not be started: the run failed.

        Raises:
            KeyError: *name* has no run in progress.
        """
        run = self._running[name]
        if run is None:
            raise KeyError(name)
        return self._end(run, RunResult.FAILED, None, now)

    def _end(self, run: Run, result: RunResult, exit_code: int | None, now: float) -> RunEnd:
        """End *run* with *result*: the failure counters, the next upstream, a retry."""
        name = run.task.name
        history = self.histories.get(name, NO_HISTORY)
        consecutive, total = history.consecutive_failures, history.failures_total
        upstream_index = history.upstream_index
        if result.fresh:
            consecutive = 0
        elif result.went_wrong:
            consecutive += 1
            total += 1
            if len(run.task.upstreams) > 1:
                upstream_index = (run.upstream_index + 1) % len(run.task.upstreams)
        retry_at = self.finished(name, now, result.fresh, may_retry=result.retried)
        return RunEnd(run=run, result=result, exit_code=exit_code, ended=now,
                      duration=round(now - run.started, 3),
                      previous_failures=history.consecutive_failures,
                      consecutive_failures=consecutive, failures_total=total,
                      upstream_index=upstream_index, retry_at=retry_at,
                      forget=name not in self.tasks)

    # --- system entries ----------------------------------------------------------------------

    def schedule_system(self, name: str, due: float, priority: int = 1) -> None:
        """Queue a system entry (an internal job such as log cleaning) once, at *due*."""
        self.queue.push(due, priority, SYSTEM, name)

    def add_system_entry(self, name: str, schedule: CronSchedule, priority: int,
                         now: float) -> None:
        """Queue system entry *name* at its next time on *schedule* after *now*, and again
        at each next time whenever it is due (replacing an entry of that name)."""
        self._system[name] = SystemEntry(name, schedule, priority)
        self.queue.push(schedule.next_instant(now, self.offsets), priority, SYSTEM, name)

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
                if name in self._running:
                    self.retired[name] = old
        self.general = general
        old_tasks, self.tasks = self.tasks, new
        for name, task in new.items():
            before = old_tasks.get(name)
            if not task.enabled:
                self.queue.cancel(RUN, name)
                self.queue.cancel(RETRY, name)
            elif before is None or not before.enabled \
                    or before.schedule.expression != task.schedule.expression \
                    or before.spread != task.spread \
                    or (self.queue.get(RUN, name) is None
                        and not (task.schedule.from_end and name in self._running)):
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
            if entry.kind in (TIMEOUT, RETRY) or (entry.kind == RUN and self._from_end(entry.name)):
                self.queue.push(entry.due + delta, entry.priority, entry.kind, entry.name)

    def _from_end(self, name: str) -> bool:
        task = self.tasks.get(name)
        return task is not None and task.schedule.from_end

    def _queue_retry_from_history(self, task: TaskSpec, now: float) -> None:
        """Queue again the retry an earlier mirrord had queued (a retry lives only in the
        queue): after a run that went wrong, or was interrupted, with ``autoretry`` set, at
        its end + autoretry (at once if that has passed), unless the next scheduled run
        comes first."""
        history = self.histories.get(task.name)
        if (not task.autoretry or history is None or history.result is None
                or not history.result.retried or history.last_end is None):
            return
        retry_at = max(now, history.last_end + task.autoretry)
        next_run = self.queue.get(RUN, task.name)
        if next_run is None or retry_at < next_run.due:
            self.queue.push(retry_at, task.priority, RETRY, task.name)

    def _queue_next_run(self, task: TaskSpec, now: float) -> None:
        """Queue *task*'s next scheduled run: a cron task at its next time; an interval task
        one interval after its last recorded end (at once, plus its spread, without one, or
        when that run was ended by a stop of mirrord or by its crash: it did not finish)."""
        if task.schedule.from_end:
            history = self.histories.get(task.name)
            last_end = None if history is None else history.last_end
            unfinished = history is not None and history.result in (RunResult.KILLED,
                                                                    RunResult.INTERRUPTED)
            due = (now + task.spread if last_end is None or unfinished
                   else self.next_scheduled(task, min(last_end, now)))
            self.queue.push(due, task.priority, RUN, task.name)
            return
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
