# SPDX-License-Identifier: GPL-3.0-or-later
"""Calls from plugin threads into the loop."""
from __future__ import annotations

import selectors
import threading

import pytest

from mirror.loopcalls import LoopCalls, LoopClosed


def test_a_call_from_another_thread_wakes_the_loop_and_returns_its_result():
    calls = LoopCalls()
    selector = selectors.DefaultSelector()
    selector.register(calls.read_fd, selectors.EVENT_READ)
    results = []
    thread = threading.Thread(target=lambda: results.append(calls.submit(lambda: 6 * 7)))
    thread.start()
    assert selector.select(5), "the loop was not woken"
    thread.join()
    calls.run_pending()
    assert results[0].result(0) == 42
    assert selector.select(0) == []  # the wakeup bytes were drained
    failing = calls.submit(lambda: 1 / 0)
    calls.run_pending()
    with pytest.raises(ZeroDivisionError):
        failing.result(0)
    calls.close()
    with pytest.raises(LoopClosed):
        calls.submit(lambda: 1).result(0)


def test_close_fails_calls_still_queued():
    calls = LoopCalls()
    queued = calls.submit(lambda: 1)
    calls.close()
    with pytest.raises(LoopClosed):
        queued.result(0)


def test_a_backlog_is_run_in_slices_and_the_loop_is_woken_again_for_the_rest():
    calls = LoopCalls()
    selector = selectors.DefaultSelector()
    selector.register(calls.read_fd, selectors.EVENT_READ)
    ran = []
    futures = [calls.submit(lambda number=number: ran.append(number)) for number in range(100)]
    wakeups = 0
    while selector.select(0):
        calls.run_pending(limit=32)
        wakeups += 1
        assert len(ran) <= 32 * wakeups  # never more than a slice per wakeup
    assert ran == list(range(100)) and wakeups == 4
    assert all(future.done() for future in futures)
    calls.close()
