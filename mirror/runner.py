# SPDX-License-Identifier: GPL-3.0-or-later
"""The seam between the daemon and the operating system's processes.

``MirrorDaemon`` starts stages, signals process groups and reaps children only through a
``Runner``. ``ProcessRunner`` is the real one (mirror.process); the simulated-time tests give
the daemon a fake one that starts no process.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from mirror import process


@dataclass(frozen=True)
class Launch:
    """A stage to spawn: its argv, its task log (which exists) and its whole environment."""

    argv: list[str]
    log_path: str
    environ: Mapping[str, str]


@dataclass(frozen=True)
class Launched:
    """How a launch went: the child's pid (also its process group), or the error."""

    pid: int | None = None
    error: OSError | None = None


class Runner(Protocol):
    """Starts stages, signals process groups, reaps children."""

    def spawn(self, job: Launch) -> Launched:
        """Start *job* now; its pid, or the error that stopped it (never raises OSError)."""

    def signal_group(self, pgid: int, signum: int) -> bool:
        """Send *signum* to process group *pgid*; whether any process got it."""

    def group_alive(self, pgid: int) -> bool:
        """Whether any process (a zombie too) is left in group *pgid*."""

    def reap(self) -> list[tuple[int, int]]:
        """Every exited child as ``(pid, wait status)``; never blocks."""


class ProcessRunner:
    """The real Runner: posix_spawn in a new session, killpg, waitpid."""

    def spawn(self, job: Launch) -> Launched:
        try:
            return Launched(pid=process.spawn(job.argv, job.log_path, job.environ))
        except OSError as problem:
            return Launched(error=problem)

    def signal_group(self, pgid: int, signum: int) -> bool:
        return process.signal_group(pgid, signum)

    def group_alive(self, pgid: int) -> bool:
        return process.group_alive(pgid)

    def reap(self) -> list[tuple[int, int]]:
        return process.reap()
