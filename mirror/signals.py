# SPDX-License-Identifier: GPL-3.0-or-later
"""Signals without work in handlers: the C-level handler writes the signal number to a pipe.

The loop watches the pipe's read end and drains it; the Python-level handler
does nothing. Coalesced signals (two SIGCHLDs arriving together) become one
byte or two; either way the loop reaps until waitpid reports nothing left.
"""
from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD)


def _record(_signum: int, _frame: FrameType | None) -> None:
    """Nothing to do: the wakeup fd already carries the signal number."""


class SignalPipe:
    """Routes *signals* to a non-blocking pipe that a selector can watch."""

    def __init__(self, signals: Iterable[int] = HANDLED) -> None:
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._signals = tuple(signals)
        self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in self._signals:
            signal.signal(signum, _record)
            signal.siginterrupt(signum, False)
        # An older image of mirrord blocked them across its exec (mirror.reexec): what
        # arrived meanwhile is pending, and is delivered to the handlers now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, self._signals)

    def descriptors(self) -> tuple[int, int]:
        """The pipe's two ends (kept open when the daemon detaches)."""
        return self.read_fd, self._write_fd

    def drain(self) -> list[int]:
        """The signal numbers received since the last call, in arrival order."""
        received: list[int] = []
        while True:
            try:
                data = os.read(self.read_fd, 512)
            except BlockingIOError:
                return received
            if not data:
                return received
            received.extend(data)

    def close(self) -> None:
        """Restore default handling and close the pipe."""
        for signum in self._signals:
            signal.signal(signum, signal.SIG_DFL)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self.read_fd)
        os.close(self._write_fd)
