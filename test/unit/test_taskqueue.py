# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import random

import pytest

from mirror.taskqueue import RETRY, RUN, SYSTEM, TIMEOUT, TaskQueue


def test_due_order_then_priority_then_insertion():
    queue = TaskQueue()
    queue.push(100, 5, RUN, "late")
    queue.push(50, 10, RUN, "low")
    queue.push(50, 1, RUN, "high")
    queue.push(50, 10, RETRY, "low2")
    assert [entry.name for entry in queue.pop_due(100)] == ["high", "low", "low2", "late"]
    assert queue.pop() is None and len(queue) == 0


def test_pop_due_leaves_future_entries():
    queue = TaskQueue()
    queue.push(10, 1, RUN, "a")
    queue.push(20, 1, RUN, "b")
    assert [e.name for e in queue.pop_due(15)] == ["a"]
    assert queue.peek().name == "b" and len(queue) == 1


def test_push_replaces_same_kind_and_name():
    queue = TaskQueue()
    queue.push(10, 1, RUN, "a")
    queue.push(30, 1, RUN, "a")
    queue.push(20, 1, TIMEOUT, "a")
    assert [(e.kind, e.due) for e in queue.entries()] == [(TIMEOUT, 20), (RUN, 30)]


def test_cancel():
    queue = TaskQueue()
    queue.push(10, 1, RUN, "a")
    queue.push(11, 1, RETRY, "a")
    queue.push(12, 1, SYSTEM, "clean")
    assert queue.cancel(RUN, "a") and not queue.cancel(RUN, "a")
    queue.cancel_all("a")
    assert [e.name for e in queue.entries()] == ["clean"]
    assert queue.get(SYSTEM, "clean").due == 12


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        TaskQueue().push(1, 1, "bogus", "a")


def test_matches_a_sorted_model_under_random_operations():
    rng = random.Random(5)
    queue, model = TaskQueue(), {}
    for _ in range(20000):
        name = f"t{rng.randrange(300)}"
        action = rng.random()
        if action < 0.5:
            entry = queue.push(rng.randrange(10000), rng.randint(1, 10), RUN, name)
            model[(RUN, name)] = entry
        elif action < 0.8:
            assert queue.cancel(RUN, name) == (model.pop((RUN, name), None) is not None)
        else:
            popped = queue.pop()
            expected = min(model.values()) if model else None
            assert popped == expected
            if popped:
                del model[(popped.kind, popped.name)]
        assert len(queue) == len(model)
    assert queue.entries() == sorted(model.values())
    assert len(queue._heap) <= 2 * len(model) + 65  # cancelled entries are compacted away
