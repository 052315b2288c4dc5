# SPDX-License-Identifier: GPL-3.0-or-later
"""Frozen settings: [general] and one TaskSpec per task section."""
from __future__ import annotations

from dataclasses import dataclass, field

from mirror.schedule import CronSchedule

RSYNC = "rsync"
SIMPLE = "simple"
TASK_TYPES = (RSYNC, SIMPLE)
PRIORITY_HIGHEST = 1
PRIORITY_LOWEST = 10
DEFAULT_RSYNC_ARGS = "--links --hard-links --times --verbose --delete --recursive"


@dataclass(frozen=True)
class GeneralSettings:
    """The ``[general]`` section."""

    emails: tuple[str, ...] = ()
    loadlimit: float = 4.0
    httpconn: int = 1200
    httpports: tuple[int, ...] = (80, 443)
    logdir: str = "/var/log/rsync/"
    maxtasks: int = 10


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
    line: int = 0
