# SPDX-License-Identifier: GPL-3.0-or-later
"""MirrorDaemon: the single-threaded loop that runs syncs on time.

The loop sleeps in one selector until a signal (through the wakeup pipe), a
control request, the wall-clock timer of the next due entry, or the end of a
kill grace period. Signal handlers only record; the loop does the work.

The rules (what starts, which upstream, the next stage, a run's result, retries, the failure
counters) are the scheduling core's (mirror.core); this module carries its decisions out:
processes through a Runner (mirror.runner), task logs, the history file, events, replies.
"""
from __future__ import annotations

import logging
import os
import select
import selectors
import signal
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from mirror.checkfiles import checkdir_for
from mirror.config import MirrorConfig, load_config
from mirror.control import Connection, ControlServer, error, validate_request
from mirror.core import Action, NextStage, RunEnd, SchedulingCore, StageDecision
from mirror.cron import CronSchedule
from mirror.events import (
    MirrorEvent,
    MirrorStartEvent,
    PreTaskStartEvent,
    ReloadEvent,
    RunFinishedEvent,
    RunSystemTaskEvent,
    StopEvent,
    SystemTaskInfo,
    TaskEnqueueEvent,
    TaskSizeEvent,
    TaskStartEvent,
    TaskStopEvent,
)
from mirror.history import HistoryStore, RunResult, TaskHistory, exit_status
from mirror.i18n import _
from mirror.locations import ConfigLocation
from mirror.loopcalls import LoopCalls, LoopFunction, T
from mirror.pluginhost import PluginHost
from mirror.process import describe_status
from mirror.procident import RUN_ID_VARIABLE, ProcessIdentity, process_info
from mirror.reexec import Restarter, hold_signals
from mirror.runner import Launch, Launched, ProcessRunner, Runner
from mirror.runs import (
    Ending,
    Run,
    RunKind,
    RunRecord,
    append_line,
    footer_line,
    header_line,
    write_log,
)
from mirror.sdnotify import SystemdNotifier
from mirror.stagework import StageWork, received_bytes
from mirror.sysinfo import SystemProbe
from mirror.task import GeneralSettings, StageRole
from mirror.viewjson import queue_reply, run_reply, status_reply
from mirror.views import Snapshot, queue_views, take_snapshot, task_view
from mirror.wallclock import CLOCK_SET, WallTimer

if TYPE_CHECKING:
    from mirror.entrypoints import EntryPointLike

AFTER_SYNC = (StageRole.ON_SUCCESS, StageRole.ON_FAILURE)
log = logging.getLogger(__name__)

CLOCK_JUMP_TOLERANCE = 2.0  # seconds of disagreement between wall and monotonic time
MAX_SELECT_SECONDS = 86400.0  # without timerfd: epoll cannot wait much longer than 24 days
PLUGIN_STOP_SECONDS = 10.0  # how long plugins get to handle their last events on stop
RESTART_FLUSH_SECONDS = 2.0  # how long clients get to read their replies before an exec
# State changes are written at most this often (and at stop): a kill -9 loses at most this
# much, and a busy site pays one write per interval instead of one per run end.
STATE_FLUSH_SECONDS = 0.5
BURST_REAP_SECONDS = 0.25  # during a burst of starts, ends are reaped this often
STATE_RETRY_SECONDS = 5  # after a failed write (a full disk)
STATE_ERROR_LOG_SECONDS = 60.0
ADOPTED_POLL_SECONDS = 5  # without pidfds, how often adopted runs are looked for in /proc


def open_pidfd(pid: int) -> int:
    """A pidfd for *pid*, readable once it has ended (a seam: a test makes it fail, to
    exercise the /proc fallback).

    Raises:
        AttributeError: this Python has no ``os.pidfd_open``.
        OSError: the kernel has no pidfds (Linux before 5.3), or *pid* is gone (ESRCH).
    """
    return os.pidfd_open(pid)


@dataclass
class DaemonPaths:
    """Files the daemon owns."""

    pidfile: str
    socket: str
    statefile: str


class MirrorDaemon:
    """Carries out the scheduling core's decisions: the children (through a Runner), the
    history, the control socket, the plugins' events.

    What to start, which upstream and stages a run uses, when a run has ended and what its end
    changes are the core's decisions; the daemon spawns, signals and reaps through *runner*,
    writes the task logs and the history, and reports back to the core.
    """

    def __init__(self, location: ConfigLocation, config: MirrorConfig, paths: DaemonPaths,
                 zone: tzinfo, probe: SystemProbe | None = None,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 runner: Runner | None = None) -> None:
        """Load the history and queue every task; nothing starts before :meth:`serve`.

        Raises:
            StateFileError: the state file cannot be used.
        """
        self.location = location
        self.plugin_sections = config.plugins
        self.paths = paths
        self.zone = zone
        self.probe = probe or SystemProbe()
        self.wall = wall
        self.monotonic = monotonic
        self.runner: Runner = runner if runner is not None else ProcessRunner()
        self.store = HistoryStore(paths.statefile)
        saved = self.store.load_all()
        self.states: dict[str, TaskHistory] = saved.histories
        # The runs a mirrord before this one left in progress; taken over when serving.
        self._left_runs: dict[str, dict[str, Any]] | None = saved.runs
        self._loaded_digest = saved.digest
        # After an exec, the SHA-256 of the state file the last image wrote (mirror.lifecycle
        # sets it): a file changed since is not trusted with the runs' stages.
        self.expected_state_digest: str | None = None
        # After an exec, the old image's children and the process groups it was ending, as
        # the handover (not the state file) says.
        self.handed_children: tuple[int, ...] = ()
        self.handed_ending_groups: tuple[int, ...] = ()
        self._drain_signals: Callable[[], list[int]] = list
        self._restarting = False
        self.handover_digest: str | None = None  # of the state file this image last wrote
        self.stagework = StageWork(checkdir_for(paths.statefile), monotonic)
        self.core = SchedulingCore(config.tasks, config.general, zone, wall(), os.path.realpath,
                                   histories=self.states, checkdir=self.stagework.checkdir)
        self.pids: dict[int, str] = {}
        self.kill_deadlines: dict[int, float] = {}  # process group → monotonic deadline
        # Adopted runs whose process is not a child: pidfd → task name; without pidfds,
        # when /proc is looked at next (monotonic).
        self.watched: dict[int, str] = {}
        self._adopted_poll_at: float | None = None
        self._records: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
        self.stopping = False
        self.stop_reason = ""
        self.control = ControlServer(paths.socket, self.handle_request, monotonic=monotonic)
        # Made after detaching (it closes every descriptor but those it is told to keep).
        self.calls: LoopCalls | None = None
        self.plugins = PluginHost(self._call_in_loop, self.probe, paths.statefile,
                                  general=lambda: self.core.general)
        self.systemd = SystemdNotifier()
        # Upgrading in place (-s restart): set by mirror.lifecycle; this image's id, when it
        # began serving, and why the last restart failed, for the "info" request.
        self.restarter: Restarter | None = None
        self.restart_requested = False
        self.restart_error: str | None = None
        self.image = os.urandom(8).hex()
        self.image_started = wall()
        self._state_flush_at: float | None = None  # monotonic; None when nothing is unsaved
        self._held_events: list[MirrorEvent] | None = None  # during a scheduling pass
        self._made_directories: set[str] | None = None  # during a scheduling pass
        # The children's environment (after the switch of users and without NOTIFY_SOCKET),
        # as a plain dict: posix_spawn would otherwise walk os.environ in Python for every
        # child of a burst.
        self.child_environ: dict[str, str] = dict(os.environ)
        self._state_written_at = -STATE_FLUSH_SECONDS  # monotonic
        self._state_error_logged = -STATE_ERROR_LOG_SECONDS  # monotonic time of the last
        # Created in serve(), after detaching closed every other descriptor.
        self.selector: selectors.BaseSelector
        self.timer: WallTimer
        self._clock_offset = wall() - monotonic()

    @property
    def general(self) -> GeneralSettings:
        """The current ``[general]`` settings (held by the core; a reload replaces them)."""
        return self.core.general

    @property
    def runs(self) -> dict[str, Run]:
        """The runs in progress by task name (a copy of what the core tracks)."""
        return {run.task.name: run for run in self.core.runs()}

    # --- the loop -----------------------------------------------------------------------

    def serve(self, signals_fd: int, drain_signals: Callable[[], list[int]]) -> None:
        """Run until stopped and every child is reaped.

        Args:
            signals_fd: the read end of the signal wakeup pipe.
            drain_signals: returns the signal numbers received since the last call.
        """
        self._drain_signals = drain_signals
        self.selector = selectors.DefaultSelector()
        self.timer = WallTimer()
        self.selector.register(signals_fd, selectors.EVENT_READ, None)
        if self.timer.fd is not None:
            self.selector.register(self.timer.fd, selectors.EVENT_READ, self._on_timer)
        self.calls = self.calls or LoopCalls()  # made here when no plugins were loaded
        self.selector.register(self.calls.read_fd, selectors.EVENT_READ, self.calls.run_pending)
        self.control.attach(self.selector)
        log.info("mirrord started: %d tasks, %d enabled", len(self.core.tasks),
                 sum(1 for task in self.core.tasks.values() if task.enabled))
        self.emit(MirrorStartEvent())
        self._take_over_runs()
        self.handle_sigchld()  # children taken over that ended before this image could hear
        self._announce_queued(self.core.tasks)
        self.systemd.ready(self._status_line())
        while True:
            if not self.tick():
                break
            for key, mask in self.selector.select(self._sleep_seconds()):
                if key.fd == signals_fd:
                    for signum in drain_signals():
                        self._isolated(self.handle_signal, signum)
                else:
                    self._isolated(key.data, mask)
        self._shut_down()

    def tick(self) -> bool:
        """The loop's work between two waits: clock steps, kill deadlines, the state file,
        control deadlines, the scheduling pass.

        Returns:
            False once stopping is complete (no run and no process group left), else True.
        """
        self._notice_clock_jump()
        self._kill_overdue_groups()
        self._poll_adopted_when_due()
        self._end_stalled_stages()
        self._flush_state_when_due()
        self.control.expire(self.monotonic())
        if self.restart_requested and not self.stopping:
            self._restart()
        if not self.stopping:
            self._scheduling_pass()
        return not (self.stopping and not self.core.running and not self.kill_deadlines)

    def load_plugins(self, entries: Iterable[EntryPointLike] | None = None) -> None:
        """Load and enable the plugins (*entries*: the ones found before detaching; found
        now by default). After detaching: their threads would not survive it."""
        self.calls = self.calls or LoopCalls()
        self.plugins.load(self.plugin_sections, entries)

    def _serve_calls_for(self, seconds: float) -> None:
        """While plugins finish at stop: answer their calls for up to *seconds*, or until a
        call (or a plugin's thread ending) wakes us."""
        assert self.calls is not None
        select.select([self.calls.read_fd], [], [], seconds)
        self.calls.run_pending()

    def _call_in_loop(self, function: LoopFunction[T]) -> Future[T]:
        assert self.calls is not None, "load_plugins() comes first"
        return self.calls.submit(lambda: function(self))

    def emit(self, event: MirrorEvent) -> None:
        """Hand *event* to the plugins (after the scheduling pass, during one); never blocks."""
        if self._held_events is not None:
            self._held_events.append(event)
        else:
            self.plugins.emit(event)

    def _announce_queued(self, names: Iterable[str]) -> None:
        for name in names:
            if self.core.next_run(name) is not None:
                self.emit(TaskEnqueueEvent(name))

    def _isolated(self, handler: Callable[[int], object], argument: int) -> None:
        """Run one event handler; a bug in it is logged and the loop, and the syncs, go on."""
        try:
            handler(argument)
        except Exception:
            log.exception("unexpected error while handling an event; mirrord carries on")

    def _sleep_seconds(self) -> float | None:
        """How long select may block; None means until something happens."""
        limits = []
        if self.kill_deadlines:
            limits.append(min(self.kill_deadlines.values()) - self.monotonic())
        if self._state_flush_at is not None:
            limits.append(self._state_flush_at - self.monotonic())
        if self._adopted_poll_at is not None:
            limits.append(self._adopted_poll_at - self.monotonic())
        progress_check = self.stagework.next_deadline()
        if progress_check is not None:
            limits.append(progress_check - self.monotonic())
        control_deadline = self.control.next_deadline()
        if control_deadline is not None:
            limits.append(control_deadline - self.monotonic())
        if not self.stopping:
            head = self.core.queue.peek()
            if self.timer.fd is not None:
                if self.timer.arm(head.due if head else None):
                    log.info("the wall clock was set")
            elif head is not None:
                limits.append(min(head.due - self.wall(), MAX_SELECT_SECONDS))
        return max(0.0, min(limits)) if limits else None

    def _on_timer(self, _mask: int) -> None:
        if self.timer.read() == CLOCK_SET:
            log.info("the wall clock was set")

    def _notice_clock_jump(self) -> None:
        offset = self.wall() - self.monotonic()
        delta = offset - self._clock_offset
        self._clock_offset = offset
        if abs(delta) > CLOCK_JUMP_TOLERANCE:
            log.warning("the wall clock jumped by %+.0f s; timeouts and retries move with it, "
                        "scheduled runs keep their wall times", delta)
            self.core.clock_jumped(delta)

    # --- signals ------------------------------------------------------------------------

    def handle_signal(self, signum: int) -> None:
        """Act on a signal the loop has drained from the wakeup pipe."""
        if signum == signal.SIGCHLD:
            self.handle_sigchld()
        elif signum == signal.SIGHUP and not self.stopping:
            self.reload()
        elif signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.stop(signal.Signals(signum).name)

    def handle_sigchld(self) -> None:
        """Reap every exited child; pids that are not runs (adopted orphans) are logged."""
        for pid, status in self.runner.reap():
            name = self.pids.pop(pid, None)
            if name is None:
                log.debug("reaped process %d (%s), not a run", pid, describe_status(status)[2])
                continue
            run = self.core.run_of(name)
            assert run is not None
            try:
                self._stage_ended(run, status)
            except Exception:  # the other children of this batch are reaped: go on with them
                log.exception("%s: unexpected error while recording the end of a stage; "
                              "mirrord carries on", name)

    # --- scheduling ---------------------------------------------------------------------

    def _scheduling_pass(self) -> None:
        if self.core.seconds_until_next(self.wall()) != 0:
            return
        conditions = self.probe.conditions(self.general, len(self.core.running))
        # A burst starts its children first: the plugins hear of them after the pass, so
        # their threads do not compete with the spawns for the interpreter.
        self._held_events = []
        self._made_directories = set()
        reaped_at = self.monotonic()
        try:
            for decision in self.core.due(self.wall(), conditions):
                if decision.action is Action.START:
                    self._start(decision.name, RunKind(decision.kind.value))
                    # A burst of starts takes seconds; reap and save as it goes, so that a
                    # run's end is recorded, and written, when it happens, not after the burst.
                    if self.monotonic() - reaped_at >= BURST_REAP_SECONDS:
                        reaped_at = self.monotonic()
                        self.handle_sigchld()
                        self._flush_state_when_due()
                elif decision.action is Action.EXPIRE:
                    self._terminate(decision.name, Ending.TIMEOUT)
                elif decision.action is Action.SYSTEM_DUE:
                    if decision.system is not None:
                        system = decision.system
                        self.emit(RunSystemTaskEvent(SystemTaskInfo(
                            system.name, decision.due, system.priority,
                            system.schedule.expression)))
                else:  # SKIP, DELAY, WAIT
                    log.info("%s %s: %s", decision.name, decision.action, decision.reason)
                if decision.action in (Action.START, Action.SKIP, Action.DELAY):
                    self._announce_queued([decision.name])
        finally:
            self._made_directories = None
            held, self._held_events = self._held_events, None
            for event in held:
                self.plugins.emit(event)
            if any(isinstance(event, TaskStartEvent) for event in held):
                self.systemd.status(self._status_line())

    def add_system_entry(self, name: str, schedule: CronSchedule, priority: int) -> None:
        """Queue system entry *name* on *schedule* (for plugins; loop thread)."""
        self.core.add_system_entry(name, schedule, priority, self.wall())
        log.info("system entry %s scheduled (%s)", name, schedule.expression)

    def record_size(self, name: str, size: int) -> None:
        """Keep the size a plugin measured for *name*, and announce it (loop thread)."""
        if name not in self.core.tasks and name not in self.states:
            return
        self.states.setdefault(name, TaskHistory()).size = size
        self.save_state()
        self.emit(TaskSizeEvent(name, size))

    def snapshot(self) -> Snapshot:
        """What plugins may see, now (loop thread)."""
        return take_snapshot(self.core, self.states, self.zone, self.wall())

    def plugin_request(self, message: dict[str, Any]) -> dict[str, Any]:
        """A control request from a plugin; ``wait`` is not offered (loop thread)."""
        problem = validate_request(message)
        if problem is not None:
            return error(problem)
        if message.get("wait"):
            return error(_("plugins cannot wait for a run; handle RunFinishedEvent instead"))
        return self.handle_request(message, None) or {"ok": True}

    def _start(self, name: str, kind: RunKind) -> Run:
        """Begin the run the core reserved for *name* and start its first stage."""
        now = self.wall()
        run = self.core.run_started(name, kind, now)
        state = self.states.setdefault(name, TaskHistory())
        state.last_start = now
        state.upstream = run.upstream
        self.emit(PreTaskStartEvent(name))
        self._spawn_stage(run)
        if self._held_events is None:  # else once at the end of the scheduling pass
            self.systemd.status(self._status_line())
        return run

    def _status_line(self) -> str:
        """systemd's one-line status: ``40 tasks, 3 running``."""
        return _("{tasks} tasks, {running} running").format(tasks=len(self.core.tasks),
                                                            running=len(self.core.running))

    def _spawn_stage(self, run: Run) -> None:
        """Start *run*'s current stage: its directories, the log's header line, the child."""
        now = self.wall()
        run.stage_started = now
        self.states[run.task.name].stage = run.stage
        try:
            self._make_directory(self.general.logdir)
            for directory in run.task.directories():
                self._make_directory(directory)
            problem_before = self.stagework.before_spawn(run)
            if problem_before is None:
                run.log_offset = write_log(run.log_path, header_line(run, now, self.zone))
        except OSError as problem:
            log.error("%s: cannot prepare stage %d: %s", run.task.name, run.stage, problem)
            append_line(run.log_path, f"=== mirrord: {run.task.name} could not start: "
                                      f"{problem}\n")
            self._finish(self.core.stage_not_started(run.task.name, self.wall()), None)
            return
        if problem_before is not None:  # the checkfile cannot be fetched: sync without it
            message = f"checkfile not fetched ({problem_before}): the full sync runs"
            log.error("%s: %s", run.task.name, message)
            append_line(run.log_path, f"=== mirrord: {message}\n")
            self._carry_out(run, self.core.stage_ended(run.task.name, None, self.wall()),
                            None, "not started")
            return
        if not run.run_id:
            run.run_id = os.urandom(8).hex()
        environ = {**self.child_environ, **run.current.environ, RUN_ID_VARIABLE: run.run_id}
        self._stage_launched(run, self.runner.spawn(Launch(list(run.argv), run.log_path,
                                                           environ)))

    def _make_directory(self, path: str) -> None:
        """Create *path* if missing; during a scheduling pass, once (a burst shares a logdir).

        Raises:
            OSError: it cannot be created.
        """
        if self._made_directories is not None and path in self._made_directories:
            return
        os.makedirs(path, exist_ok=True)
        if self._made_directories is not None:
            self._made_directories.add(path)

    def _stage_launched(self, run: Run, launched: Launched) -> None:
        if launched.error is not None:
            message = f"cannot run {run.argv[0]}: {launched.error.strerror or launched.error}"
            append_line(run.log_path, f"=== mirrord: {message}\n")
            log.error("%s: %s", run.task.name, message)
            self._finish(self.core.stage_not_started(run.task.name, self.wall()), None)
            return
        assert launched.pid is not None
        run.pid = launched.pid
        run.identity = None  # read from /proc when the state is next saved (_run_records)
        self.pids[run.pid] = run.task.name
        self.stagework.launched(run, run.pid)
        self.save_state()  # the run's record: a mirrord started after a crash takes it over
        log.info("%s: stage %d/%d started (%s%s), pid %d", run.task.name, run.stage, run.stages,
                 run.kind, f", upstream {run.upstream}" if run.upstream else "", run.pid)
        if run.stage == 1:
            run.first_pid = run.pid
            self.emit(TaskStartEvent(run.task.name, run.pid))

    def _stage_ended(self, run: Run, status: int) -> None:
        code, signum, outcome = describe_status(status)
        now = self.wall()
        append_line(run.log_path, footer_line(run, now, self.zone, outcome))
        assert run.pid is not None
        if self.runner.group_alive(run.pid):
            self._end_group(run.pid)  # what the stage left behind in its group goes too
        signal_name = signal.Signals(signum).name if signum else None
        unchanged, note = self.stagework.stage_ended(run, code, now)
        if note:
            append_line(run.log_path, f"=== mirrord: {note}\n")
            log.info("%s: %s", run.task.name, note)
        self._carry_out(run, self.core.stage_ended(run.task.name, code, now, unchanged),
                        signal_name, outcome)

    def _carry_out(self, run: Run, decision: StageDecision, signal_name: str | None,
                   outcome: str) -> None:
        """Start the next stage, or record the end of the run, as the core decided after a
        stage that ended as *outcome* said."""
        if isinstance(decision, NextStage):
            log.info("%s: stage %d/%d ended: %s", run.task.name, run.stage - 1, run.stages,
                     outcome)
            run.pid = None
            if run.current.role in AFTER_SYNC:
                # The run's end will report how the sync ended, not how its hook did.
                run.outcome_signal = signal_name
            if run.current.role is StageRole.ON_SUCCESS:
                for note in self.stagework.synced(run, self.wall(), self.general):
                    append_line(run.log_path, f"=== mirrord: {note}\n")
            self._spawn_stage(run)
            return
        if run.current.role in AFTER_SYNC:
            signal_name = run.outcome_signal
        self._finish(decision, signal_name if not decision.result.fresh else None, outcome)

    def _finish(self, end: RunEnd, signal_name: str | None, outcome: str | None = None) -> None:
        """Record the run end the core decided; *outcome* is how its last stage ended, when
        one was started."""
        run, name, now, result, retry_at = end.run, end.name, end.ended, end.result, end.retry_at
        state = self.states.setdefault(name, TaskHistory())
        state.last_end = now
        state.duration = end.duration
        state.result = result
        state.exit_code = end.exit_code
        state.signal = signal_name
        # after a hook, the stage the sync reached (the hook follows it)
        stage = run.stage - 1 if run.current.role in AFTER_SYNC else run.stage
        state.stage = stage
        state.upstream = run.upstream
        state.received_bytes = received_bytes(run)
        if result.fresh:
            state.last_success = now
        for note in self.stagework.run_ended(run, result, now, self.general):
            append_line(run.log_path, f"=== mirrord: {note}\n")
        state.consecutive_failures = end.consecutive_failures
        state.failures_total = end.failures_total
        state.upstream_index = end.upstream_index
        reply = result_reply(name, state)
        if end.forget:
            self.states.pop(name, None)  # removed by a reload: forgotten once finished
        log.log(logging.INFO if result.fresh or result is RunResult.VETOED else logging.WARNING,
                "%s: %s after %.0f s%s%s", name, result, now - run.started,
                f" (stage {run.stage}/{run.stages}: {outcome})" if outcome else "",
                f"; retry at {time.strftime('%H:%M:%S', time.localtime(retry_at))}"
                if retry_at else "")
        self.save_state()
        if run.waiters:  # a client told of the end finds it in the state file too
            self.flush_state()
        for waiter in run.waiters:
            waiter.reply(reply)
        status = exit_status(end.exit_code, signal_name)
        self.emit(TaskStopEvent(name, run.first_pid, 127 if status is None else status))
        self.emit(RunFinishedEvent(
            taskname=name, kind=run.kind, result=result, exit_code=end.exit_code,
            signal=signal_name, started=run.started, ended=now, duration=end.duration,
            stage=stage, stages=run.stages, upstream=run.upstream, log_path=run.log_path,
            previous_failures=end.previous_failures,
            consecutive_failures=end.consecutive_failures, retry_at=retry_at,
            received_bytes=state.received_bytes))
        if retry_at is not None:
            self._announce_queued([name])
        self.systemd.status(self._status_line())

    def save_state(self) -> None:
        """Note that the state changed (O(1)). The loop writes it before it next sleeps, or,
        when it wrote less than STATE_FLUSH_SECONDS ago, once that interval has passed."""
        if self._state_flush_at is None:
            self._state_flush_at = max(self.monotonic(),
                                       self._state_written_at + STATE_FLUSH_SECONDS)

    def _flush_state_when_due(self) -> None:
        if self._state_flush_at is not None and self._state_flush_at <= self.monotonic():
            self.flush_state()

    def flush_state(self) -> None:
        """Write the state file now; a failure is logged, and retried after the interval."""
        now = self.monotonic()
        try:
            self.handover_digest = self.store.save(self.states, self._run_records())
        except OSError as problem:
            if now - self._state_error_logged >= STATE_ERROR_LOG_SECONDS:
                log.error("cannot write the state file %s: %s (retrying every %d s)",
                          self.paths.statefile, problem, STATE_RETRY_SECONDS)
                self._state_error_logged = now
            self._state_flush_at = now + STATE_RETRY_SECONDS
            return
        self._state_written_at = now
        if self._state_error_logged > -STATE_ERROR_LOG_SECONDS:
            log.info("the state file %s is written again", self.paths.statefile)
            self._state_error_logged = -STATE_ERROR_LOG_SECONDS
        self._state_flush_at = None

    def _run_records(self) -> dict[str, dict[str, Any]]:
        """The state file's records of the runs in progress (each made again only when its
        run has moved on: a burst of 1,000 runs is saved many times)."""
        records = {}
        for run in self.core.runs():
            if run.identity is None and run.pid is not None and run.pid in self.pids:
                # Not yet reaped, so the pid is still this child's: the identity is the same
                # as at its start, and a burst's short runs that end before a save cost none.
                run.identity = ProcessIdentity.of(run.pid, run.run_id)
            key = (run.stage, run.ending, run.identity, run.stage_started)
            cached = self._records.get(run.task.name)
            if cached is not None and cached[0] == key:
                records[run.task.name] = cached[1]
                continue
            record = self.core.record_of(run)
            if record is not None:
                records[run.task.name] = record.to_dict()
                self._records[run.task.name] = (key, records[run.task.name])
        for name in [name for name in self._records if name not in records]:
            del self._records[name]
        return records

    # --- runs left by an earlier mirrord ------------------------------------------------

    def _take_over_runs(self) -> None:
        """Take over the runs the state file says were in progress when the last mirrord
        ended: after ``-s restart`` they are still this process's children; after a crash
        they are orphans (watched through a pidfd), or gone (recorded as interrupted)."""
        left, self._left_runs = self._left_runs or {}, None
        for pgid in self.handed_ending_groups:  # SIGKILL after killgrace, as it would have
            if self.runner.group_alive(pgid):
                self._end_group(pgid)
        trusted = self.expected_state_digest is not None
        if trusted and self.expected_state_digest != self._loaded_digest:
            log.error("the state file %s is not the one the last image of mirrord wrote before "
                      "its exec; the runs it names are not taken over, and the last image's "
                      "children are ended", self.paths.statefile)
            for pid in self.handed_children:
                if self._is_child(pid):
                    self._end_group(pid)
            left, trusted = {}, False
        now = self.wall()
        for name, data in left.items():
            try:
                record = RunRecord.from_dict(name, data, now)
            except ValueError as problem:
                log.error("%s: the state file's record of its run in progress cannot be used "
                          "(%s); it is ignored", name, problem)
                continue
            try:
                self._take_over(record, trusted and record.identity.pid in self.handed_children)
            except Exception:  # a bug, or a record no check foresaw: the others still count
                log.exception("%s: its run in progress cannot be taken over", name)
        if left:
            self.save_state()

    @staticmethod
    def _is_child(pid: int, start_ticks: int | None = None) -> bool:
        """Whether *pid* is this process's child (started at *start_ticks*, if given)."""
        info = process_info(pid)
        return (info is not None and info.parent == os.getpid()
                and (start_ticks is None or info.start_ticks == start_ticks))

    def _take_over(self, record: RunRecord, handed: bool) -> None:
        """Take over *record*'s run: *handed* when the old image of this process handed it
        over (its record is then trusted: its log path and localdir as recorded)."""
        identity = record.identity
        child = handed and self._is_child(identity.pid, identity.start_ticks)
        alive = child or identity.matches()
        if record.name not in self.core.tasks:
            if alive:
                log.warning("%s: no longer configured; ending the run (process group %d) the "
                            "last mirrord left running", record.name, identity.pid)
                self._end_group(identity.pid)
            return
        try:
            run = self.core.adopt(record, self.wall(), trusted=child)
        except KeyError:
            return
        state = self.states.setdefault(record.name, TaskHistory())
        state.stage = run.stage
        state.upstream = run.upstream
        if not alive:
            now = self.wall()
            outcome = _("interrupted: mirrord was not running")
            append_line(run.log_path, footer_line(run, now, self.zone, outcome))
            self._finish(self.core.run_lost(record.name, RunResult.INTERRUPTED, now), None,
                         outcome)
            return
        if run.ending is not None and not (run.ending is Ending.STALLED
                                           and run.current.role in AFTER_SYNC):
            self._end_group(identity.pid)  # it was being ended: TERM again, KILL after killgrace
        self.stagework.launched(run, identity.pid)  # its iotimeout counts from now
        if child:
            self.pids[identity.pid] = record.name
        else:
            run.unattended = True
            self._watch(run)
        log.info("%s: took over its run in progress from the last mirrord (stage %d/%d, "
                 "pid %d%s)", record.name, run.stage, run.stages, identity.pid,
                 "" if child else "; not a child: its exit status will not be known")
        self.emit(TaskStartEvent(record.name, run.first_pid or identity.pid))

    def _watch(self, run: Run) -> None:
        """Notice the end of an adopted run's process, which is not a child: through a pidfd
        where the kernel has them, else by looking at /proc every ADOPTED_POLL_SECONDS."""
        assert run.identity is not None
        try:
            handle = open_pidfd(run.identity.pid)
        except ProcessLookupError:  # ended since it was recognised: no fallback needed
            self._adopted_ended(run.task.name)
            return
        except (AttributeError, OSError) as problem:
            if self._adopted_poll_at is None:
                log.warning("cannot watch adopted runs through a pidfd (%s; Linux 5.3 or later "
                            "has them): looking at /proc every %d s instead", problem,
                            ADOPTED_POLL_SECONDS)
                self._adopted_poll_at = self.monotonic() + ADOPTED_POLL_SECONDS
            return
        if not run.identity.matches():  # gone, and its pid perhaps reused, before the open
            os.close(handle)
            self._adopted_ended(run.task.name)
            return
        self.watched[handle] = run.task.name
        self.selector.register(handle, selectors.EVENT_READ,
                               lambda _mask: self._on_pidfd(handle))

    def _on_pidfd(self, handle: int) -> None:
        """Pidfd *handle* is readable: its process ended."""
        name = self.watched.pop(handle)
        self.selector.unregister(handle)
        os.close(handle)
        self._adopted_ended(name)

    def _poll_adopted_when_due(self) -> None:
        if self._adopted_poll_at is None or self._adopted_poll_at > self.monotonic():
            return
        watching = False
        for run in self.core.runs():
            if run.unattended and run.identity is not None:
                if run.task.name in self.watched.values():
                    continue
                if run.identity.matches():
                    watching = True
                else:
                    self._adopted_ended(run.task.name)
        self._adopted_poll_at = (self.monotonic() + ADOPTED_POLL_SECONDS) if watching else None

    def _end_stalled_stages(self) -> None:
        for name, seconds in self.stagework.stalled():
            run = self.core.run_of(name)
            if run is not None:
                append_line(run.log_path, f"=== mirrord: no data moved for {seconds:.0f} s "
                                          f"(iotimeout {run.task.iotimeout} s): ending the "
                                          "stage\n")
            self._terminate(name, Ending.STALLED)

    def _adopted_ended(self, name: str) -> None:
        """An adopted run's process, not a child, has ended: its exit status is unknown."""
        run = self.core.run_of(name)
        if run is None:
            return
        now = self.wall()
        outcome = _("ended while unattended: exit status unknown")
        append_line(run.log_path, footer_line(run, now, self.zone, outcome))
        assert run.pid is not None and run.identity is not None
        # What the stage left in its group goes too; but a pid that another process has
        # taken since (noticed late, by polling) may lead another group by now.
        info = process_info(run.pid)
        reused = info is not None and info.start_ticks != run.identity.start_ticks
        if not reused and self.runner.group_alive(run.pid):
            self._end_group(run.pid)
        self._finish(self.core.run_lost(name, RunResult.UNATTENDED, now), None, outcome)

    # --- ending runs --------------------------------------------------------------------

    def _terminate(self, name: str, ending: Ending) -> bool:
        """Begin ending *name*'s run: TERM to its process group now, KILL after killgrace.

        Returns:
            False when *name* has no stage running (not running, or between spawns).
        """
        run = self.core.run_of(name)
        if run is None or run.pid is None:
            return False
        if run.unattended and run.identity is not None and not run.identity.matches():
            return False  # its end is being noticed; its group id may belong to others now
        self.core.end_requested(name, ending)
        log.warning("%s: %s; sending SIGTERM to process group %d", name, ending, run.pid)
        self._end_group(run.pid)
        return True

    def _end_group(self, pgid: int) -> None:
        """SIGTERM to process group *pgid* now; SIGKILL when killgrace has passed."""
        self.runner.signal_group(pgid, signal.SIGTERM)
        self.kill_deadlines.setdefault(pgid, self.monotonic() + self.general.killgrace)

    def _kill_overdue_groups(self) -> None:
        now = self.monotonic()
        for pgid, deadline in list(self.kill_deadlines.items()):
            if not self.runner.group_alive(pgid):
                del self.kill_deadlines[pgid]
            elif deadline <= now:
                del self.kill_deadlines[pgid]
                self.runner.signal_group(pgid, signal.SIGKILL)
                log.warning("process group %d outlived the grace period; sent SIGKILL", pgid)

    def stop(self, reason: str) -> None:
        """Stop: end every run (TERM, then KILL after the grace period), then exit the loop."""
        if not self.stopping:
            log.info("stopping (%s): ending %d running tasks", reason, len(self.core.running))
            self.stop_reason = reason
            self.systemd.stopping()
        self.stopping = True
        for name in list(self.core.running):
            self._terminate(name, Ending.KILLED)

    def _shut_down(self) -> None:
        self.flush_state()
        self.emit(StopEvent(self.stop_reason))
        self.plugins.stop(PLUGIN_STOP_SECONDS, self._serve_calls_for)
        if self._state_flush_at is not None:  # sizes plugins reported while they stopped
            self.flush_state()
        self.calls.close()  # type: ignore[union-attr]
        self.control.close(flush_seconds=2.0)
        self.timer.close()
        self.selector.close()
        log.info("mirrord stopped")

    # --- restart: a new image in place -----------------------------------------------------

    def _info(self) -> dict[str, Any]:
        """The ``info`` reply: this daemon and image, and how the last restart went."""
        from mirror import __version__

        return {"ok": True, "pid": os.getpid(), "version": __version__, "image": self.image,
                "image_started": self.image_started, "running": len(self.core.running),
                "restart_error": self.restart_error}

    def _restart_request(self) -> dict[str, Any]:
        """Check that a restart can work: the config has no errors and the new code starts.
        The exec itself comes at the start of the loop's next turn, after this reply."""
        if self.stopping:
            return error(_("mirrord is stopping"))
        if self.restart_requested or self._restarting:
            return error(_("a restart is under way already"))
        if self.restarter is None:
            return error(_("this mirrord cannot restart itself"))
        config = load_config(self.location)
        if config.errors:
            for issue in config.errors:
                log.error("%s", issue)
            log.error("restart refused: the config has %d errors; nothing changed",
                      len(config.errors))
            return error(_("restart refused: the config has {count} errors; nothing "
                           "changed").format(count=len(config.errors)),
                         errors=[str(issue) for issue in config.errors])
        problem = self._restart_conflict(config)
        if problem is not None:
            log.error("restart refused: %s; nothing changed", problem)
            return error(_("restart refused: {reason}; nothing changed").format(reason=problem))
        problem = self.restarter.preflight(self._image_environ())
        if problem is not None:
            log.error("restart refused: %s; this mirrord carries on", problem)
            self.restart_error = problem
            return error(_("restart refused: {reason}; this mirrord carries on").format(
                reason=problem))
        self.restart_requested = True
        self.restart_error = None
        return {"ok": True, "pid": os.getpid(), "image": self.image,
                "running": len(self.core.running)}

    def _restart_conflict(self, config: MirrorConfig) -> str | None:
        """What in *config* a restart cannot carry the running syncs across, or None: a
        state file elsewhere (its lock is this one's), or running tasks it no longer has."""
        if config.general.statefile != self.general.statefile:
            return _("the config moves the state file (statefile in [general]); stop and "
                     "start mirrord to use another one")
        names = {task.name for task in config.tasks}
        gone = sorted(name for name in self.core.running if name not in names)
        if gone:
            return _("the config no longer has {names}, which are running; restart once "
                     "they have ended, or reload first").format(names=", ".join(gone))
        return None

    def _image_environ(self) -> dict[str, str]:
        """The next image's environment: this one's, with systemd's socket given back."""
        environ = dict(os.environ)
        if self.systemd.address:
            environ["NOTIFY_SOCKET"] = self.systemd.address
        return environ

    def _restart(self) -> None:
        """Hand over to a new image of mirrord: the plugins stop, the state (with every run in
        progress) is written, and the process executes itself again, keeping its pid, its
        children, the control socket and the locks. If the state cannot be written or the
        exec fails, this image carries on and says why."""
        assert self.restarter is not None
        self.restart_requested = False
        self._restarting = True
        log.info("restarting in place (pid %d): %d runs carry on", os.getpid(),
                 len(self.core.running))
        self.systemd.reloading()
        # From here, signals stay pending (a stop during the hand-over is not lost: the new
        # image, or this one if the exec fails, acts on it).
        unblocked = hold_signals(self._drain_signals)
        try:
            self.control.suspend(flush_seconds=RESTART_FLUSH_SECONDS)
            self.emit(StopEvent("restart"))
            self.plugins.stop(PLUGIN_STOP_SECONDS, self._serve_calls_for)
            self.flush_state()
            if self._state_flush_at is not None:
                problem = _("the state file {path} cannot be written").format(
                    path=self.paths.statefile)
            else:
                failure = self.restarter.execute(self._image_environ())
                problem = _("cannot execute {program}: {reason}").format(
                    program=self.restarter.argv[0], reason=failure.strerror or failure)
        except Exception as unexpected:  # a bug: this image must go on serving all the same
            log.exception("unexpected error while restarting")
            problem = str(unexpected)
        log.error("restart failed: %s; this mirrord carries on", problem)
        self.restart_error = problem
        self.control.unsuspend()
        self.load_plugins()
        self.emit(MirrorStartEvent())
        self.systemd.ready(self._status_line())
        self._restarting = False
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)

    def handover_runs(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """For the next image: the runs' processes that are this process's children, and
        the process groups being ended (SIGKILL after killgrace)."""
        children = tuple(run.pid for run in self.core.runs()
                         if run.pid is not None and not run.unattended)
        return children, tuple(self.kill_deadlines)

    # --- reload -------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the config; apply it if it has no errors. Running syncs are never touched."""
        self.systemd.reloading()
        try:
            return self._reload()
        finally:
            self.systemd.ready(self._status_line())

    def _reload(self) -> bool:
        config = load_config(self.location)
        for issue in config.issues:
            (log.error if issue.severity == "error" else log.warning)("%s", issue)
        if config.errors:
            log.error("reload refused: the config has %d errors; nothing changed",
                      len(config.errors))
            return False
        old = set(self.core.tasks)
        new = {task.name for task in config.tasks}
        self.core.reload(config.tasks, config.general, self.wall())
        self.plugin_sections = config.plugins
        log.info("reloaded: %d tasks (%d added, %d removed); %d runs continue", len(new),
                 len(new - old), len(old - new), len(self.core.running))
        self.emit(ReloadEvent(added=tuple(sorted(new - old)), removed=tuple(sorted(old - new)),
                              tasks=tuple(task.name for task in config.tasks),
                              plugin_sections={name: dict(section.raw) for name, section
                                               in config.plugins.items()}))
        self._announce_queued(self.core.tasks)
        return True

    # --- control requests ---------------------------------------------------------------

    def handle_request(self, message: dict[str, Any],
                       connection: Connection | None) -> dict[str, Any] | None:
        """Answer one control request (see mirror.control for the protocol)."""
        command = message["command"]
        if command == "queue":
            return queue_reply(queue_views(self.core), self.zone)
        if command == "status":
            return status_reply(self.snapshot())
        if command == "info":
            return self._info()
        if command == "restart":
            return self._restart_request()
        name = message.get("name")
        known = name in self.core.tasks or (command == "cancel" and name in self.core.retired)
        if not isinstance(name, str) or not known:
            return error(_("unknown task {name!r}").format(name=name),
                         known=sorted(self.core.tasks))
        if command == "cancel":
            if not self._terminate(name, Ending.CANCELLED):
                return error(_("{name} is not running").format(name=name))
            return {"ok": True, "name": name}
        if self.stopping:
            return error(_("mirrord is stopping"))
        try:
            self.core.start_now(name, self.wall())
        except ValueError as problem:
            return error(str(problem))
        run = self._start(name, RunKind.MANUAL)
        if name not in self.core.running and not message.get("wait"):
            return error(_("{name} could not start; see {log}").format(name=name,
                                                                       log=run.log_path))
        if message.get("wait"):
            if name in self.core.running and connection is not None:
                run.waiters.append(connection)
                return None
            return result_reply(name, self.states[name])
        return run_reply(task_view(name, self.core, self.states), self.zone)


def result_reply(name: str, state: TaskHistory) -> dict[str, object]:
    """The answer to ``run`` with ``wait``: how the run that just ended went."""
    succeeded = state.result is not None and state.result.fresh
    return {"ok": succeeded, "name": name, "result": state.result,
            "exit_code": state.exit_code, "signal": state.signal,
            "error": None if succeeded else _("{name} ended: {result}").format(
                name=name, result=state.result)}
