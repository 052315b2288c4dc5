# SPDX-License-Identifier: GPL-3.0-or-later
"""A Runner that starts no process: the simulated-time tests decide when each "process" ends.

Pids count up from 1000; a process group is its leader's pid. Wait statuses are encoded as
the kernel does (exit code << 8, or the signal number), so the daemon decodes them as usual.
A process ends on SIGKILL, and on SIGTERM unless it was started ``stubborn``. Until it is
reaped, its group is alive (a zombie), as with real processes.
"""
from __future__ import annotations

import errno
import signal
from dataclasses import dataclass, field

from mirror.runner import Launch, Launched


@dataclass
class FakeProcess:
    """One spawned stage."""

    pid: int
    argv: tuple[str, ...]
    environ: dict[str, str]
    log_path: str
    stubborn: bool = False  # ignores SIGTERM
    status: int | None = None  # wait status once it exited
    reaped: bool = False
    signals: list[int] = field(default_factory=list)


class FakeRunner:
    """Implements mirror.runner.Runner in memory."""

    def __init__(self) -> None:
        self.processes: dict[int, FakeProcess] = {}
        self.missing: set[str] = set()  # argv[0] values that "do not exist"
        self.stubborn: set[str] = set()  # log paths whose processes ignore SIGTERM
        self._next_pid = 1000

    # --- the Runner protocol ---

    def spawn(self, job: Launch) -> Launched:
        if job.argv[0] in self.missing:
            return Launched(error=FileNotFoundError(errno.ENOENT, "No such file or directory"))
        pid = self._next_pid
        self._next_pid += 1
        self.processes[pid] = FakeProcess(pid, tuple(job.argv), dict(job.environ),
                                          job.log_path, stubborn=job.log_path in self.stubborn)
        return Launched(pid=pid)

    def signal_group(self, pgid: int, signum: int) -> bool:
        process = self.processes.get(pgid)
        if process is None or process.reaped:
            return False
        if signum == 0:
            return True
        process.signals.append(signum)
        if process.status is None and (signum == signal.SIGKILL
                                       or (signum == signal.SIGTERM and not process.stubborn)):
            process.status = int(signum)
        return True

    def group_alive(self, pgid: int) -> bool:
        return self.signal_group(pgid, 0)

    def reap(self) -> list[tuple[int, int]]:
        ended = []
        for process in self.processes.values():
            if process.status is not None and not process.reaped:
                process.reaped = True
                ended.append((process.pid, process.status))
        return ended

    # --- for the tests ---

    def exit(self, pid: int, code: int) -> None:
        """Process *pid* exits with *code* (reaped at the daemon's next SIGCHLD)."""
        process = self.processes[pid]
        assert process.status is None, f"process {pid} has already ended"
        process.status = code << 8

    def alive(self) -> list[FakeProcess]:
        """The processes that have not exited."""
        return [process for process in self.processes.values() if process.status is None]
