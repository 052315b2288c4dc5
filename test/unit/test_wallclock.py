# SPDX-License-Identifier: GPL-3.0-or-later
"""The timerfd wake-up: it fires at a wall time, and reports clock sets wherever they land."""
from __future__ import annotations

import os
import select
import time

import pytest

from mirror.wallclock import CLOCK_SET, FIRED, WallTimer


@pytest.fixture
def timer():
    clock = WallTimer()
    if clock.fd is None:
        pytest.skip("no timerfd on this system")
    yield clock
    clock.close()


def set_clock_to_now() -> None:
    try:
        time.clock_settime(time.CLOCK_REALTIME, time.time())
    except PermissionError:
        pytest.skip("setting the clock needs CAP_SYS_TIME")


def test_fires_at_the_wall_time(timer):
    timer.arm(time.time() + 0.2)
    started = time.monotonic()
    assert select.select([timer.fd], [], [], 5)[0] == [timer.fd]
    assert time.monotonic() - started >= 0.15
    assert timer.read() == FIRED


@pytest.mark.skipif(os.geteuid() != 0, reason="setting the clock needs root")
def test_a_clock_set_is_reported_by_read(timer):
    timer.arm(None)
    set_clock_to_now()
    assert select.select([timer.fd], [], [], 5)[0] == [timer.fd]
    assert timer.read() == CLOCK_SET


@pytest.mark.skipif(os.geteuid() != 0, reason="setting the clock needs root")
def test_a_clock_set_before_re_arming_is_reported_by_arm(timer):
    # The daemon re-arms on every pass; a set that lands in between must neither be lost
    # nor make arming fail (the kernel answers ECANCELED there).
    timer.arm(None)
    set_clock_to_now()
    assert timer.arm(time.time() + 60) is True
    assert timer.arm(time.time() + 60) is False
