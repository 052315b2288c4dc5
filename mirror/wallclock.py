# SPDX-License-Identifier: GPL-3.0-or-later
"""A wake-up at a wall-clock instant that also reports when the clock is set.

Linux's timerfd on CLOCK_REALTIME, armed at an absolute time with
TFD_TIMER_CANCEL_ON_SET, fires at that wall time even across suspend or an NTP
step, and its read fails with ECANCELED when the clock is set. Without timerfd
(not Linux) the caller falls back to a select timeout.
"""
from __future__ import annotations

import ctypes
import errno
import math
import os
import struct

CLOCK_REALTIME = 0
TFD_CLOEXEC = 0o2000000
TFD_NONBLOCK = 0o4000
TFD_TIMER_ABSTIME = 1
TFD_TIMER_CANCEL_ON_SET = 2
FIRED = "fired"
CLOCK_SET = "clock set"


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class WallTimer:
    """A timerfd; ``fd`` is None where timerfd is not available."""

    def __init__(self) -> None:
        self.fd: int | None = None
        try:
            self._libc = ctypes.CDLL(None, use_errno=True)
            fd = self._libc.timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC)
        except (OSError, AttributeError):
            return
        if fd >= 0:
            self.fd = fd

    def arm(self, when: float | None) -> bool:
        """Fire at epoch second *when*; None disarms (but still reports clock changes).

        Returns:
            True when the clock was set since the timer was last armed or read: the
            kernel reports that here (ECANCELED) instead of through read().

        Raises:
            OSError: the timer could not be set.
        """
        if self.fd is None:
            return False
        spec = _Itimerspec()
        if when is None:
            # A far-future expiry keeps TFD_TIMER_CANCEL_ON_SET watching the clock.
            spec.it_value.tv_sec = 2**62
        else:
            fraction, whole = math.modf(max(when, 1e-9))
            spec.it_value.tv_sec = int(whole)
            spec.it_value.tv_nsec = int(fraction * 1e9)
        flags = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET
        clock_was_set = False
        while self._libc.timerfd_settime(self.fd, flags, ctypes.byref(spec), None) != 0:
            number = ctypes.get_errno()
            if number != errno.ECANCELED or clock_was_set:
                raise OSError(number, os.strerror(number))
            clock_was_set = True  # reported once; the second attempt arms the timer
        return clock_was_set

    def read(self) -> str | None:
        """After the fd polled readable: FIRED, CLOCK_SET, or None (spurious)."""
        if self.fd is None:
            return None
        try:
            data = os.read(self.fd, 8)
        except BlockingIOError:
            return None
        except OSError as error:
            if error.errno == errno.ECANCELED:
                return CLOCK_SET
            raise
        return FIRED if data and struct.unpack("Q", data)[0] else None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
