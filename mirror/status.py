# SPDX-License-Identifier: GPL-3.0-or-later
"""The control socket's ``queue``, ``status`` and ``run`` replies, for daemon.py until it
calls :mod:`mirror.viewjson` with a snapshot itself; then this module goes away.

Every task is serialized by :func:`mirror.viewjson.task_json`, the shape ``/api/status``
has too.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo

from mirror.core import SchedulingCore
from mirror.history import TaskHistory
from mirror.runs import Run
from mirror.viewjson import queue_json, task_json
from mirror.views import QueueView, task_view


def queue_snapshot(core: SchedulingCore, zone: tzinfo) -> list[dict[str, object]]:
    """The queue in due order, as :func:`mirror.viewjson.queue_json` gives it."""
    return queue_json((QueueView(entry.name, entry.kind, entry.due, entry.priority)
                       for entry in core.queue.entries()), zone)


def task_status(name: str, core: SchedulingCore, runs: Mapping[str, Run],
                states: Mapping[str, TaskHistory], zone: tzinfo) -> dict[str, object]:
    """Task *name* as :func:`mirror.viewjson.task_json` gives it.

    Raises:
        KeyError: no such task.
    """
    return task_json(task_view(name, core, runs, states), zone)


def status_snapshot(core: SchedulingCore, runs: Mapping[str, Run],
                    states: Mapping[str, TaskHistory],
                    zone: tzinfo) -> dict[str, dict[str, object]]:
    """Every task keyed by name, in name order (tasks removed by a reload show while they
    run), as :func:`mirror.viewjson.status_reply` has them."""
    return {name: task_status(name, core, runs, states, zone)
            for name in sorted({*core.tasks, *core.retired})}
