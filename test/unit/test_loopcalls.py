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
