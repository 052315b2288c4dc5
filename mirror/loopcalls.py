# SPDX-License-Identifier: GPL-3.0-or-later
"""Calls into the daemon's loop from other threads: queue a function, wake the loop, get a Future.

This is the only way plugin threads reach the daemon's state. The loop runs the
functions between its other work, so they never race with scheduling.

The types of that path live here, once: :class:`LoopSide` is what a function run on
the loop is given (the daemon), :data:`LoopFunction` such a function, and
:class:`LoopCaller` what hands one to the loop and returns its Future
(``MirrorDaemon._call_in_loop``; ``PluginHost`` and ``HostAPI`` take one).
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from mirror.cron import CronSchedule
    from mirror.views import Snapshot

log = logging.getLogger(__name__)


class LoopClosed(RuntimeError):
    """The daemon has stopped serving; nothing more runs on its loop."""


SLICE = 32  # calls run per wakeup of the loop

# What a plugin's question to the loop may end in instead of an answer.
UNANSWERED = (LoopClosed, TimeoutError)

T = TypeVar("T")


class LoopSide(Protocol):
    """What the daemon does for plugins, on its loop thread (MirrorDaemon implements it)."""

    def snapshot(self) -> Snapshot: ...
    def plugin_request(self, message: dict[str, Any]) -> dict[str, Any]: ...
    def add_system_entry(self, name: str, schedule: CronSchedule, priority: int) -> None: ...
    def record_size(self, name: str, size: int) -> None: ...


# A function to run on the loop: it gets the daemon's side and returns an answer.
LoopFunction = Callable[[LoopSide], T]


class LoopCaller(Protocol):
    """Hands a :data:`LoopFunction` to the loop; any thread. Returns the Future of its answer
    (failed with :class:`LoopClosed` once the loop has stopped)."""

    def __call__(self, function: LoopFunction[T], /) -> Future[T]: ...


class LoopCalls:
    """A thread-safe queue of functions, and a pipe whose read end wakes the loop's selector."""

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pending: collections.deque[tuple[Callable[[], Any], Future[Any]]] = (
            collections.deque())
        self.closed = False
        self._lock = threading.Lock()

    def submit(self, function: Callable[[], T]) -> Future[T]:
        """Run *function* on the loop soon. Any thread.

        Returns:
            A Future for its result (or its exception). If the loop has closed,
            the Future fails with LoopClosed.
        """
        future: Future[T] = Future()
        with self._lock:  # so that close() cannot free the descriptor between check and write
            if self.closed:
                future.set_exception(LoopClosed("mirrord is stopping"))
                return future
            self._pending.append((function, future))
            # A full pipe means the loop is awake already.
            with contextlib.suppress(BlockingIOError):
                os.write(self._write_fd, b"\0")
        return future

    def run_pending(self, _mask: int = 0, limit: int = SLICE) -> None:
        """Run up to *limit* queued functions; if more are queued, the pipe stays readable
        so that the loop comes back for them after its other work (reaping, starting,
        signals never wait behind a backlog). Loop thread only."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self.read_fd, 4096):
                pass
        for _ in range(limit):
            if not self._pending:
                return
            function, future = self._pending.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function())
            except Exception as problem:
                log.exception("a call from a plugin thread failed")
                future.set_exception(problem)
        with self._lock:
            if self._pending and not self.closed:
                with contextlib.suppress(BlockingIOError):
                    os.write(self._write_fd, b"\0")

    def close(self) -> None:
        """Fail what is still queued and refuse new calls."""
        with self._lock:
            self.closed = True
        while self._pending:
            _function, future = self._pending.popleft()
            if future.set_running_or_notify_cancel():
                future.set_exception(LoopClosed("mirrord is stopping"))
        for fd in (self.read_fd, self._write_fd):
            os.close(fd)
