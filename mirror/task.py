# SPDX-License-Identifier: GPL-3.0-or-later
"""Frozen settings: [general] and one TaskSpec per task section.

A TaskSpec holds what the scheduler reads on every task, whatever its kind, and the kind's
own options (:mod:`mirror.kinds`); what a run executes comes from the kind.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from mirror.cron import CronSchedule
from mirror.interval import IntervalSchedule
from mirror.kinds.base import PRIORITY_LOWEST, TaskOptions
from mirror.textenum import TextEnum

if TYPE_CHECKING:
    from mirror.kinds.base import TaskKind
    from mirror.zoneoffsets import ZoneOffsets


@dataclass(frozen=True)
class GeneralSettings:
    """The ``[general]`` section."""

    emails: tuple[str, ...] = ()
    loadlimit: float = 4.0
    httpconn: int = 1200
    httpports: tuple[int, ...] = (80, 443)
    logdir: str = "/var/log/rsync/"
    maxtasks: int = 10
    successcodes: tuple[int, ...] = ()
    killgrace: int = 30
    statefile: str | None = None
    randomdelay: int = 0
    exec_before: tuple[str, ...] = ()
    exec_on_success: tuple[str, ...] = ()
    exec_on_failure: tuple[str, ...] = ()
    maintainer: str = ""
    tracehost: str = ""


# When a task runs: a cron expression, or an interval after the last run's end.
Schedule = Union[CronSchedule, IntervalSchedule]


class StageRole(TextEnum):
    """What a stage of a run is for; the core decides what its end means by it."""

    BEFORE = "exec_before"  # a hook that may veto the run
    CHECK = "check"  # fetches the upstream's checkfile
    SYNC = "sync"  # the kind's own stages
    ON_SUCCESS = "exec_on_success"  # a hook after the sync succeeded
    ON_FAILURE = "exec_on_failure"  # a hook after the sync failed


@dataclass(frozen=True)
class Hooks:
    """A task's hook commands (argv, argv[0] a path; empty: none), ``[general]``'s when the
    task sets none."""

    before: tuple[str, ...] = ()
    on_success: tuple[str, ...] = ()
    on_failure: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stage:
    """One stage of a run: the argv to start (argv[0] a path) and what its environment adds
    to the daemon's children's environment."""

    argv: tuple[str, ...]
    environ: Mapping[str, str] = field(default_factory=dict)
    role: StageRole = StageRole.SYNC


@dataclass(frozen=True)
class TaskSpec:
    """One task, validated; paths are absolute.

    ``options`` are its kind's own values (an ``RsyncOptions``, ``SimpleOptions``…), which
    also say its kind. ``upstreams`` (empty when the kind has none) and ``localdir`` (None
    when none) are the kind's keys, kept here because the scheduler reads them on every task.
    """

    name: str
    enabled: bool
    time: str
    schedule: Schedule = field(repr=False)
    options: TaskOptions
    priority: int = PRIORITY_LOWEST
    timeout: int = 0
    autoretry: int = 0
    upstreams: tuple[str, ...] = ()
    localdir: str | None = None
    successcodes: tuple[int, ...] = ()
    line: int = 0
    spread: int = 0  # seconds each due run is delayed by (randomdelay, from the name)
    hooks: Hooks = Hooks()
    iotimeout: int = 0  # end a stage that moved no data for this long; 0: never

    def next_slot(self, after: float, offsets: ZoneOffsets) -> float:
        """The first scheduled time strictly after *after* (epoch seconds; for an
        ``interval`` task, the end of its last run), its ``randomdelay`` offset included: a
        cron slot is found for ``after - spread``, so that a delayed run not yet started is
        still the next one."""
        if self.schedule.from_end:
            return self.schedule.next_instant(after, offsets) + self.spread
        return self.schedule.next_instant(after - self.spread, offsets) + self.spread

    @property
    def type(self) -> str:
        """The kind's name, as ``type =`` gives it (``rsync``, ``simple``, ``command``)."""
        return self.options.KIND

    @property
    def kind(self) -> TaskKind[Any]:
        """The task's kind (:mod:`mirror.kinds`)."""
        from mirror.kinds import kind_named

        kind = kind_named(self.options.KIND)
        if kind is None:  # options are made only by a kind
            raise LookupError(f"no task kind is called {self.options.KIND!r}")
        return kind

    def stages(self, upstream_index: int = 0, log_path: str = "") -> list[Stage]:
        """The stages of a run from ``upstreams[upstream_index]`` (wrapping) writing to
        *log_path*, in order."""
        return self.kind.stages(self, upstream_index, log_path)

    def directories(self) -> tuple[str, ...]:
        """The directories to create before each stage starts (an rsync task's localdir)."""
        return self.kind.directories(self)

    def succeeded(self, exit_code: int | None, general: GeneralSettings) -> bool:
        """Whether a stage that exited with *exit_code* (None: killed by a signal) succeeded.

        0 always does; so do the codes in ``successcodes`` of the task and of
        [general], and the kind's own (rsync's 24: some source files vanished).
        """
        if exit_code is None:
            return False
        return (exit_code == 0 or exit_code in self.successcodes
                or exit_code in general.successcodes or exit_code in self.kind.success_codes)
