# SPDX-License-Identifier: GPL-3.0-or-later
"""Frozen settings: [general] and one TaskSpec per task section.

A TaskSpec holds what the scheduler reads on every task, whatever its kind, and the kind's
own options (:mod:`mirror.kinds`); what a run executes comes from the kind.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mirror.cron import CronSchedule
from mirror.kinds.base import PRIORITY_LOWEST, TaskOptions

if TYPE_CHECKING:
    from mirror.kinds.base import TaskKind


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


@dataclass(frozen=True)
class Stage:
    """One stage of a run: the argv to start (argv[0] a path) and what its environment adds
    to the daemon's children's environment."""

    argv: tuple[str, ...]
    environ: Mapping[str, str] = field(default_factory=dict)


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
    schedule: CronSchedule = field(repr=False)
    options: TaskOptions
    priority: int = PRIORITY_LOWEST
    timeout: int = 0
    autoretry: int = 0
    upstreams: tuple[str, ...] = ()
    localdir: str | None = None
    successcodes: tuple[int, ...] = ()
    line: int = 0

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
