# SPDX-License-Identifier: GPL-3.0-or-later
"""The events the daemon emits to plugins: frozen dataclasses with keyword fields.

The six classic events keep mirror 0.8.4's names and call their handlers with
0.8.4's positional arguments (:attr:`MirrorEvent.args`). The newer events
carry full detail and call their handlers with the event object itself.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from mirror.history import RunResult


@dataclass(frozen=True)
class MirrorEvent:
    """Base of every event. ``name`` is the class name, which handlers subscribe to."""

    classic: ClassVar[bool] = False  # classic handlers get positional args, the others the event

    @property
    def name(self) -> str:
        return type(self).__name__

    @classmethod
    def handler_parameters(cls) -> tuple[str, ...]:
        """The names of what a handler of this event is called with, in order: the fields
        of a classic event, else ``("event",)``."""
        if cls.classic:
            return tuple(field.name for field in fields(cls))
        return ("event",)

    @property
    def args(self) -> tuple[object, ...]:
        """What a handler is called with."""
        if self.classic:
            return tuple(getattr(self, field.name) for field in fields(self))
        return (self,)


@dataclass(frozen=True)
class MirrorStartEvent(MirrorEvent):
    """The daemon has started and its plugins are enabled. Handlers get no arguments."""

    classic = True


@dataclass(frozen=True)
class TaskEnqueueEvent(MirrorEvent):
    """A task's next run was queued (at start, after each due run, after a reload)."""

    classic = True
    taskname: str


@dataclass(frozen=True)
class PreTaskStartEvent(MirrorEvent):
    """A task is about to start."""

    classic = True
    taskname: str


@dataclass(frozen=True)
class TaskStartEvent(MirrorEvent):
    """A task's first stage is running as *taskpid*."""

    classic = True
    taskname: str
    taskpid: int


@dataclass(frozen=True)
class TaskStopEvent(MirrorEvent):
    """A task's run ended. *exitcode* is the last stage's exit status, -N after signal N,
    127 when it could not be started; *taskpid* is 0 if no process ever ran."""

    classic = True
    taskname: str
    taskpid: int
    exitcode: int


@dataclass(frozen=True)
class SystemTaskInfo:
    """What RunSystemTaskEvent carries: a system entry that came due."""

    name: str
    time: float  # the due time, epoch seconds
    priority: int
    schedule: str  # the cron expression


@dataclass(frozen=True)
class RunSystemTaskEvent(MirrorEvent):
    """A system entry (such as the log cleaner) came due; its owner runs it now."""

    classic = True
    taskinfo: SystemTaskInfo


@dataclass(frozen=True)
class RunFinishedEvent(MirrorEvent):
    """A run ended, with everything known about it. Times are epoch seconds.

    ``result`` is a :class:`RunResult`; ``signal`` is e.g. ``SIGKILL`` when the last stage
    died of a signal; ``previous_failures`` is how many runs in a row had failed before this
    one; ``received_bytes`` is what rsync's ``--stats`` said the sync stages received (None
    when no stage's log said).
    """

    taskname: str
    kind: str  # run, retry or manual
    result: RunResult
    exit_code: int | None
    signal: str | None
    started: float
    ended: float
    duration: float
    stage: int
    stages: int
    upstream: str | None
    log_path: str
    previous_failures: int
    consecutive_failures: int
    retry_at: float | None
    received_bytes: int | None = None


@dataclass(frozen=True)
class TaskSizeEvent(MirrorEvent):
    """A plugin reported the size of a task's mirror, in bytes."""

    taskname: str
    size: int


@dataclass(frozen=True)
class ReloadEvent(MirrorEvent):
    """The config was re-read and applied; ``plugin_sections`` is plugin.ini as now read."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    tasks: tuple[str, ...]
    plugin_sections: dict[str, dict[str, str]]


@dataclass(frozen=True)
class StopEvent(MirrorEvent):
    """The daemon is stopping; *reason* is e.g. SIGTERM. The last event delivered."""

    reason: str


EVENT_TYPES: dict[str, type[MirrorEvent]] = {
    cls.__name__: cls for cls in (
        MirrorStartEvent, TaskEnqueueEvent, PreTaskStartEvent, TaskStartEvent, TaskStopEvent,
        RunSystemTaskEvent, RunFinishedEvent, TaskSizeEvent, ReloadEvent, StopEvent)}
