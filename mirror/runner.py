# SPDX-License-Identifier: GPL-3.0-or-later
"""The seam between the daemon and the operating system's processes.

``MirrorDaemon`` starts stages, signals process groups and reaps children only through a
``Runner``. ``ProcessRunner`` is the real one (mirror.process and the launcher thread); the
simulated-time tests give the daemon a fake one that starts no process.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from mirror import process
from mirror.launcher import Launch, Launched, Launcher, launch

if TYPE_CHECKING:
    from mirror.runs import Run


class Runner(Protocol):
    """Starts stages, signals process groups, reaps children."""

    @property
    def pending(self) -> int:
        """How many submitted stages are not collected yet."""

    def spawn(self, job: Launch) -> Launched:
        """Start *job* now; its pid (also its process group), or the error that stopped it."""

    def submit(self, run: Run, job: Launch) -> None:
        """Start *job* in the background (during a burst); :meth:`collect` gives the outcome."""

    def collect(self, wait: bool = False) -> list[tuple[Run, Launched]]:
        """The submitted stages started so far; with *wait*, every pending one."""

    def signal_group(self, pgid: int, signum: int) -> bool:
        """Send *signum* to process group *pgid*; whether any process got it."""

    def group_alive(self, pgid: int) -> bool:
        """Whether any process (a zombie too) is left in group *pgid*."""

    def reap(self) -> list[tuple[int, int]]:
        """Every exited child as ``(pid, wait status)``; never blocks."""


class ProcessRunner:
    """The real Runner: posix_spawn in a new session, killpg, waitpid, and a launcher thread
    for bursts (its thread starts with the first submit, after the daemon detached)."""

    def __init__(self) -> None:
        self.launcher: Launcher[Run] = Launcher()

    @property
    def pending(self) -> int:
        return self.launcher.pending

    def spawn(self, job: Launch) -> Launched:
        return launch(job)

    def submit(self, run: Run, job: Launch) -> None:
        self.launcher.submit(run, job)

    def collect(self, wait: bool = False) -> list[tuple[Run, Launched]]:
        return self.launcher.collect(wait)

    def signal_group(self, pgid: int, signum: int) -> bool:
        return process.signal_group(pgid, signum)

    def group_alive(self, pgid: int) -> bool:
        return process.group_alive(pgid)

    def reap(self) -> list[tuple[int, int]]:
        return process.reap()
