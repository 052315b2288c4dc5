# SPDX-License-Identifier: GPL-3.0-or-later
"""What mirrord does around a run's stages besides spawning and reaping them: the checkfile's
private directory and comparison (:mod:`mirror.checkfiles`), the ``iotimeout`` watch
(:mod:`mirror.progress`) and the trace file after a sync (:mod:`mirror.tracefile`).

The daemon calls it at each step of a run; the core decides what each step means. Nothing here
raises: what goes wrong is logged and returned as lines for the task log, so that a run's end
is always recorded.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable

from mirror import checkfiles
from mirror.history import RunResult
from mirror.progress import ProgressWatch
from mirror.runs import Run
from mirror.safeopen import UnsafePath, open_regular
from mirror.task import GeneralSettings, StageRole
from mirror.tracefile import TraceFacts, bytes_received, write_trace
from mirror.values import local_host_name

log = logging.getLogger("mirror.daemon")
# rsync's --stats block (about 700 bytes) ends a stage's output; only what follows it (the
# "sent ... received" and "total size" lines, a closing error) can push it further back.
STATS_TAIL_BYTES = 8 * 1024
WATCHED = (StageRole.CHECK, StageRole.SYNC)  # hooks have the run's timeout, not iotimeout


class StageWork:
    """Args:
        checkdir: where checkfiles are fetched (:func:`mirror.checkfiles.checkdir_for`).
        monotonic: the clock of the ``iotimeout`` watch.
        progress: the watch (a seam for tests).
    """

    def __init__(self, checkdir: str, monotonic: Callable[[], float],
                 progress: ProgressWatch | None = None) -> None:
        self.checkdir = checkdir
        self.monotonic = monotonic
        self.progress = progress if progress is not None else ProgressWatch()

    def before_spawn(self, run: Run) -> str | None:
        """Prepare *run*'s current stage. For the checkfile's fetch: the private directory,
        and no copy left from an earlier fetch. For a sync stage of a task with a checkfile:
        the copy of the last success is dropped (the tree is about to change).

        Returns:
            Why the stage cannot run (the run goes on without it), or None.
        """
        role = run.current.role
        try:
            if role is StageRole.CHECK:
                checkfiles.prepare_checkdir(self.checkdir)
                checkfiles.discard_fetched(self.checkdir, run.task.name)
            elif role is StageRole.SYNC and run.task.kind.checkfile(run.task):
                checkfiles.forget_saved(self.checkdir, run.task.name)
        except (UnsafePath, OSError) as problem:
            if role is StageRole.CHECK:
                return str(problem)
            log.error("%s: cannot drop the saved checkfile: %s", run.task.name, problem)
        return None

    def launched(self, run: Run, pid: int) -> None:
        """The current stage started as *pid*: watch it when the task has an ``iotimeout``."""
        if run.task.iotimeout and run.current.role in WATCHED:
            self.progress.watch(run.task.name, pid, run.task.iotimeout, self.monotonic())

    def stage_ended(self, run: Run, exit_code: int | None, ended: float) -> tuple[bool, str]:
        """The current stage ended with *exit_code* at *ended* (wall).

        Returns:
            (whether a checkfile fetch found the upstream unchanged, a line for the task log
            saying what the fetch found; "" for other stages).
        """
        self.progress.forget(run.task.name)
        role = run.current.role
        if role is StageRole.SYNC:
            run.sync_stats.append((max(0.0, ended - run.stage_started),
                                   _bytes_in_log(run.log_path, run.log_offset)))
            return False, ""
        if role is not StageRole.CHECK:
            return False, ""
        name = run.task.name
        if exit_code is None:
            return False, "checkfile not fetched (killed by a signal): the full sync runs"
        if exit_code != 0:
            return False, f"checkfile not fetched (rsync exit {exit_code}): the full sync runs"
        found = checkfiles.compare_fetched(self.checkdir, name, checkfiles.sync_key(run.task))
        if found is checkfiles.Fetched.MISSING:
            return False, ("checkfile not fetched (no file came: larger than 1 MiB, or not a "
                           "regular file): the full sync runs")
        if found is checkfiles.Fetched.UNCHANGED:
            return True, "checkfile unchanged since the last successful sync: nothing to do"
        return False, ("checkfile changed upstream (or no copy of a success with this "
                       "config yet): syncing")

    def synced(self, run: Run, ended: float, general: GeneralSettings) -> list[str]:
        """The sync stages succeeded (at *ended*): write the trace file, once, before
        ``exec_on_success`` runs (a hook that triggers downstream mirrors finds it new).

        Returns:
            Lines for the task log (what went wrong doing so).
        """
        trace_name = run.task.kind.trace_name(run.task)
        if run.traced or not trace_name or not run.task.localdir:
            return []
        run.traced = True
        from mirror import __version__

        facts = TraceFacts(host=trace_name, running_on=local_host_name(), version=__version__,
                           started=run.started, ended=ended, upstream=run.upstream,
                           maintainer=general.maintainer,
                           stage_seconds=[seconds for seconds, _bytes in run.sync_stats],
                           bytes_received=received_bytes(run))
        try:
            path = write_trace(run.task.localdir, facts)
        except Exception as problem:
            log.error("%s: cannot write the trace file: %s", run.task.name, problem)
            return [f"cannot write the trace file: {problem}"]
        log.info("%s: trace file %s written", run.task.name, path)
        return []

    def run_ended(self, run: Run, result: RunResult, ended: float,
                  general: GeneralSettings) -> list[str]:
        """After the run: keep the fetched checkfile if it succeeded, and write its trace if
        :meth:`synced` has not.

        Returns:
            Lines for the task log (what went wrong doing so).
        """
        self.progress.forget(run.task.name)
        notes = []
        try:
            if not run.task.kind.checkfile(run.task):
                pass  # no system call for the tasks without one (a burst ends 1,000 runs)
            elif result is RunResult.SUCCESS:
                checkfiles.keep_fetched(self.checkdir, run.task.name,
                                        checkfiles.sync_key(run.task))
            else:
                checkfiles.discard_fetched(self.checkdir, run.task.name)
        except OSError as problem:
            log.error("%s: cannot keep the fetched checkfile: %s", run.task.name, problem)
            notes.append(f"cannot keep the fetched checkfile: {problem}")
        if result is RunResult.SUCCESS:
            notes += self.synced(run, ended, general)
        return notes

    def stalled(self) -> list[tuple[str, float]]:
        """The watched stages that moved no data for their ``iotimeout``, if a check is due."""
        return self.progress.check(self.monotonic())

    def next_deadline(self) -> float | None:
        """When :meth:`stalled` should be called next (monotonic), or None."""
        return self.progress.next_check()


def _bytes_in_log(path: str, offset: int) -> int | None:
    """rsync's ``Total bytes received`` in what the stage wrote to its log from *offset*
    (only its last STATS_TAIL_BYTES are read)."""
    fd = open_regular(path)  # the log directory may belong to the mirror's user
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(fd).st_size
        handle.seek(max(offset, size - STATS_TAIL_BYTES))
        return bytes_received(handle.read(STATS_TAIL_BYTES))


def received_bytes(run: Run) -> int | None:
    """What rsync's ``--stats`` said the run's sync stages received, in all; None when no
    stage's log said (no ``--stats``, or a kind that is not rsync)."""
    counted = [count for _seconds, count in run.sync_stats if count is not None]
    return sum(counted) if counted else None
