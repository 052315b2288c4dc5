# SPDX-License-Identifier: GPL-3.0-or-later
"""A thread that spawns stages for the loop during a burst of starts.

When many tasks are due at one second, the loop hands each spawn to a ``Launcher`` and goes
on with its own bookkeeping (the next decision, the Run, the task log's header, the ends it
reaps). os.posix_spawn releases the GIL while the kernel forks and execs, so that work
overlaps the spawns instead of adding to them.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Generic, TypeVar

from mirror.process import spawn

Key = TypeVar("Key")


@dataclass(frozen=True)
class Launch:
    """A stage to spawn: its argv, its task log (which exists) and its environment."""

    argv: list[str]
    log_path: str
    environ: dict[str, str]


@dataclass(frozen=True)
class Launched:
    """How a launch went: the child's pid, or the error that stopped it."""

    pid: int | None = None
    error: OSError | None = None


def launch(job: Launch) -> Launched:
    """Spawn *job*; never raises OSError (it is returned)."""
    try:
        return Launched(pid=spawn(job.argv, job.log_path, job.environ))
    except OSError as problem:
        return Launched(error=problem)


class Launcher(Generic[Key]):
    """A thread that carries out launches in the order they were submitted.

    The thread starts with the first submit (after the daemon detached: a thread would not
    survive the fork) and lives as long as the process. Only one thread submits and collects.
    """

    def __init__(self) -> None:
        self._jobs: SimpleQueue[tuple[Key, Launch]] = SimpleQueue()
        self._done: SimpleQueue[tuple[Key, Launched]] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self.pending = 0  # submitted, not yet collected

    def submit(self, key: Key, job: Launch) -> None:
        """Queue *job*; its outcome is collected with *key*."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="mirrord-launcher",
                                            daemon=True)
            self._thread.start()
        self.pending += 1
        self._jobs.put((key, job))

    def collect(self, wait: float = 0.0) -> list[tuple[Key, Launched]]:
        """The outcomes ready now, and those that come within *wait* seconds (it returns
        early once none is pending)."""
        outcomes = []
        deadline = time.monotonic() + wait
        while self.pending:
            try:
                outcomes.append(self._done.get(timeout=max(0.0, deadline - time.monotonic())))
            except Empty:
                break
            self.pending -= 1
        return outcomes

    def _work(self) -> None:
        while True:
            key, job = self._jobs.get()
            self._done.put((key, launch(job)))
