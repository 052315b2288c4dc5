# SPDX-License-Identifier: GPL-3.0-or-later
"""Frozen settings: [general] and one TaskSpec per task section."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mirror.cron import CronSchedule

RSYNC = "rsync"
SIMPLE = "simple"
TASK_TYPES = (RSYNC, SIMPLE)
PRIORITY_HIGHEST = 1
PRIORITY_LOWEST = 10
RSYNC_VANISHED = 24
DEFAULT_RSYNC_ARGS = "--links --hard-links --times --verbose --delete --recursive --stats"


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
    """One task, validated. ``command`` is an absolute path; paths are absolute."""

    name: str
    type: str
    enabled: bool
    time: str
    schedule: CronSchedule = field(repr=False)
    command: str
    priority: int = PRIORITY_LOWEST
    timeout: int = 0
    autoretry: int = 0
    args: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    twostage: bool = False
    firststage: str | None = None
    upstreams: tuple[str, ...] = ()
    rsyncdir: str = ""
    localdir: str | None = None
    successcodes: tuple[int, ...] = ()
    line: int = 0

    def stages(self, upstream_index: int = 0, log_path: str = "") -> list[Stage]:
        """The stages of a run from ``upstreams[upstream_index]`` (wrapping) writing to
        *log_path*, in order."""
        from mirror.commandline import stage_argvs

        return [Stage(tuple(argv)) for argv in stage_argvs(self, upstream_index)]

    def directories(self) -> tuple[str, ...]:
        """The directories to create before each stage starts (an rsync task's localdir)."""
        return (self.localdir,) if self.type == RSYNC and self.localdir else ()

    def succeeded(self, exit_code: int | None, general: GeneralSettings) -> bool:
        """Whether a stage that exited with *exit_code* (None: killed by a signal) succeeded.

        0 always does; so do the codes in ``successcodes`` of the task and of
        [general], and, for rsync tasks, 24 (some source files vanished).
        """
        if exit_code is None:
            return False
        return (exit_code == 0 or exit_code in self.successcodes
                or exit_code in general.successcodes
                or (self.type == RSYNC and exit_code == RSYNC_VANISHED))
