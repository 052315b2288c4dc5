# SPDX-License-Identifier: GPL-3.0-or-later
"""One run of a task (all its stages), and the task log it writes.

Each stage's output goes to ``LOGDIR/NAME.log.YYYY-MM-DD`` (the date the run
started), between a header line and a footer line written by the daemon.
"""
from __future__ import annotations

import contextlib
import os
import shlex
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from mirror.durations import format_duration
from mirror.history import RunResult
from mirror.localzone import iso
from mirror.task import Stage, TaskSpec
from mirror.textenum import TextEnum


class RunKind(TextEnum):
    """Why a run started: its schedule, a retry after a failure, or an admin's ``--run``."""

    RUN = "run"
    RETRY = "retry"
    MANUAL = "manual"


class Ending(TextEnum):
    """Why mirrord is ending a run (its processes get TERM, then KILL)."""

    TIMEOUT = "timeout"  # the task's timeout passed
    CANCELLED = "cancelled"  # an admin cancelled it
    KILLED = "killed"  # mirrord is stopping

    @property
    def result(self) -> RunResult:
        """The result a run ended this way has."""
        return RunResult(self.value)


MANUAL = RunKind.MANUAL


@dataclass
class Run:
    """A task's run in progress."""

    task: TaskSpec
    kind: RunKind
    plan: list[Stage]  # the run's stages, in order
    upstream: str | None
    upstream_index: int
    started: float  # epoch seconds
    log_path: str
    # Set by the core: the stage running (or about to start), and why the run is being ended.
    stage: int = 1
    ending: Ending | None = None
    # Set by the daemon as it carries the run out.
    pid: int | None = None  # of the current stage; None until it is spawned
    first_pid: int = 0  # of stage 1; 0 until it started
    stage_started: float = 0.0
    waiters: list[Any] = field(default_factory=list)  # control connections awaiting the end

    @property
    def stages(self) -> int:
        """How many stages the run has."""
        return len(self.plan)

    @property
    def current(self) -> Stage:
        """The stage running now (or about to start)."""
        return self.plan[self.stage - 1]

    @property
    def argv(self) -> tuple[str, ...]:
        """The current stage's argv."""
        return self.current.argv


def log_path_for(logdir: str, name: str, started: float, zone: tzinfo) -> str:
    """``LOGDIR/NAME.log.YYYY-MM-DD`` for a run started at *started* (local date)."""
    day = datetime.fromtimestamp(started, zone).strftime("%Y-%m-%d")
    return os.path.join(logdir, f"{name}.log.{day}")


def open_log(path: str) -> int:
    """Open *path* for appending (created 0644), close-on-exec.

    Raises:
        OSError: it cannot be opened.
    """
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def header_line(run: Run, when: float, zone: tzinfo) -> str:
    """The line written before a stage's output."""
    upstream = f", upstream {run.upstream}" if run.upstream else ""
    return (f"=== mirrord {iso(when, zone)} start {run.task.name} stage {run.stage}/"
            f"{run.stages} ({run.kind}{upstream}): {shlex.join(run.argv)}\n")


def footer_line(run: Run, when: float, zone: tzinfo, outcome: str) -> str:
    """The line after a stage ended; *outcome* is e.g. ``exit 0`` or ``killed by SIGTERM``."""
    seconds = round(when - run.stage_started)
    duration = format_duration(seconds) if seconds > 0 else "0s"
    return (f"=== mirrord {iso(when, zone)} end {run.task.name} stage {run.stage}/"
            f"{run.stages}: {outcome} after {duration}\n")


def write_line(fd: int, line: str) -> None:
    """Write one line to an open task log; a full disk is not fatal to the run or the daemon."""
    with contextlib.suppress(OSError):
        os.write(fd, line.encode("utf-8", "replace"))


def write_log(path: str, line: str) -> None:
    """Append one line to a task log, creating it.

    Raises:
        OSError: it cannot be opened.
    """
    fd = open_log(path)
    try:
        write_line(fd, line)
    finally:
        os.close(fd)


def append_line(path: str, line: str) -> None:
    """Append one line to a task log; a log that cannot be written is not fatal to the run."""
    with contextlib.suppress(OSError):
        write_log(path, line)
