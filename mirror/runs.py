# SPDX-License-Identifier: GPL-3.0-or-later
"""One run of a task (all its stages), and the task log it writes.

Each stage's output goes to ``LOGDIR/NAME.log.YYYY-MM-DD`` (the date the run
started), between a header line and a footer line written by the daemon.
"""
from __future__ import annotations

import contextlib
import math
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from mirror.durations import format_duration
from mirror.history import RunResult
from mirror.i18n import _
from mirror.localzone import iso
from mirror.procident import ProcessIdentity
from mirror.task import Stage, StageRole, TaskSpec
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
    STALLED = "stalled"  # it moved no data for the task's iotimeout

    @property
    def result(self) -> RunResult:
        """The result a run ended this way has."""
        return RunResult(self.value)


MANUAL = RunKind.MANUAL
MAX_CLOCK_AHEAD = 86400.0  # a recorded start this far ahead of now is not believed


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
    # The run's random id, in every stage's environment (MIRROR_RUN_ID), and the current
    # stage's process as recorded when it started: how mirrord knows it again after a restart.
    run_id: str = ""
    identity: ProcessIdentity | None = None
    # Adopted from a mirrord that died: the process is not a child, so its exit status
    # cannot be read; its end is noticed through a pidfd (or by polling /proc).
    unattended: bool = False
    # While an exec_on_success or exec_on_failure hook runs: how the sync ended.
    outcome: RunResult | None = None
    outcome_code: int | None = None
    outcome_signal: str | None = None
    # Set by the daemon as each sync stage ends: its seconds and the bytes rsync received
    # (None when its log did not say), for the trace file.
    sync_stats: list[tuple[float, int | None]] = field(default_factory=list)
    log_offset: int = 0  # the task log's size when the current stage started (after its header)
    traced: bool = False  # its trace file is written

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


def write_log(path: str, line: str) -> int:
    """Append one line to a task log, creating it.

    Returns:
        The log's size after the line: where the output of a stage started next begins.

    Raises:
        OSError: it cannot be opened.
    """
    fd = open_log(path)
    try:
        write_line(fd, line)
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def append_line(path: str, line: str) -> None:
    """Append one line to a task log; a log that cannot be written is not fatal to the run."""
    with contextlib.suppress(OSError):
        write_log(path, line)


@dataclass(frozen=True)
class RunRecord:
    """A run in progress as the state file keeps it, so that a mirrord started again (after
    ``-s restart``, or a crash) can take the run over: its stages as they were planned, where
    it stands, and its process's identity.

    ``localdir`` and ``resolved`` are the directory the run holds (None without one).
    """

    name: str
    kind: RunKind
    plan: tuple[Stage, ...]
    stage: int
    upstream: str | None
    upstream_index: int
    started: float
    stage_started: float
    log_path: str
    first_pid: int
    identity: ProcessIdentity
    ending: Ending | None
    localdir: str | None
    resolved: str | None
    outcome: RunResult | None = None
    outcome_code: int | None = None
    outcome_signal: str | None = None
    traced: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values."""
        return {"kind": self.kind.value, "stage": self.stage,
                "plan": [{"argv": list(stage.argv), "environ": dict(stage.environ),
                          "role": stage.role.value} for stage in self.plan],
                "upstream": self.upstream, "upstream_index": self.upstream_index,
                "started": self.started, "stage_started": self.stage_started,
                "log_path": self.log_path, "first_pid": self.first_pid,
                "pid": self.identity.pid, "start_ticks": self.identity.start_ticks,
                "boot": self.identity.boot, "run_id": self.identity.run_id,
                "ending": None if self.ending is None else self.ending.value,
                "localdir": self.localdir, "resolved": self.resolved,
                "outcome": None if self.outcome is None else self.outcome.value,
                "outcome_code": self.outcome_code, "outcome_signal": self.outcome_signal,
                "traced": self.traced}

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any], now: float | None = None) -> RunRecord:
        """Read a record back from the state file, which is not trusted: every value is
        checked; with *now*, times must also be after 1970 and at most a day ahead of it.

        Raises:
            ValueError: a value is missing or of the wrong type; the message says which.
        """
        def value(key: str, kinds: type | tuple[type, ...], optional: bool = False) -> Any:
            item = data.get(key)
            if item is None and optional:
                return None
            if not isinstance(item, kinds) or isinstance(item, bool):
                raise ValueError(_("{key!r} is missing or not a {type}").format(
                    key=key, type=_type_names(kinds)))
            return item

        plan = []
        for stage in value("plan", list):
            if not isinstance(stage, dict):
                raise ValueError(_("'plan' holds something that is not a stage"))
            argv, environ = stage.get("argv"), stage.get("environ", {})
            if (not isinstance(argv, list) or not argv
                    or not all(isinstance(item, str) for item in argv)):
                raise ValueError(_("a stage's 'argv' is not a list of strings"))
            if not isinstance(environ, dict) or not all(
                    isinstance(key, str) and isinstance(item, str)
                    for key, item in environ.items()):
                raise ValueError(_("a stage's 'environ' is not an object of strings"))
            role = stage.get("role", StageRole.SYNC.value)
            if role not in {member.value for member in StageRole}:
                raise ValueError(_("a stage's 'role' is not one of {roles}").format(
                    roles=", ".join(member.value for member in StageRole)))
            plan.append(Stage(tuple(argv), dict(environ), StageRole(role)))
        stage_number = value("stage", int)
        if not 1 <= stage_number <= len(plan):
            raise ValueError(_("'stage' {stage} is not one of the plan's stages").format(
                stage=stage_number))
        pid = value("pid", int)
        if pid <= 1:
            raise ValueError(_("'pid' {pid} is not a process a run can have").format(pid=pid))

        def word(key: str, words: type[TextEnum], optional: bool = False) -> Any:
            text = value(key, str, optional)
            if text is None:
                return None
            for member in words:
                if member.value == text:
                    return member
            raise ValueError(_("{key!r} is not one of {words}").format(
                key=key, words=", ".join(member.value for member in words)))

        def instant(key: str) -> float:
            # A huge integer would raise OverflowError in float(), and NaN or infinity
            # would poison the queue's order (the timeout entry counts from it).
            number = value(key, (int, float))
            if (isinstance(number, int) and abs(number) > 2 ** 53) or not math.isfinite(number):
                raise ValueError(_("{key!r} is not a time").format(key=key))
            if now is not None and not 0 < number <= now + MAX_CLOCK_AHEAD:
                # A year 33658 would fail in datetime when the task log is named.
                raise ValueError(_("{key!r} is not a time").format(key=key))
            return float(number)

        kind, ending = word("kind", RunKind), word("ending", Ending, optional=True)
        return cls(name=name, kind=kind, plan=tuple(plan), stage=stage_number,
                   upstream=value("upstream", str, optional=True),
                   upstream_index=value("upstream_index", int),
                   started=instant("started"), stage_started=instant("stage_started"),
                   log_path=value("log_path", str), first_pid=value("first_pid", int),
                   identity=ProcessIdentity(pid=pid, start_ticks=value("start_ticks", int),
                                            boot=value("boot", str),
                                            run_id=value("run_id", str)),
                   ending=ending, localdir=value("localdir", str, optional=True),
                   resolved=value("resolved", str, optional=True),
                   outcome=word("outcome", RunResult, optional=True),
                   outcome_code=value("outcome_code", int, optional=True),
                   outcome_signal=value("outcome_signal", str, optional=True),
                   traced=data.get("traced") is True)


def _type_names(kinds: type | tuple[type, ...]) -> str:
    return " or ".join(kind.__name__ for kind in (kinds if isinstance(kinds, tuple) else (kinds,)))
