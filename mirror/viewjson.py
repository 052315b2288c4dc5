# SPDX-License-Identifier: GPL-3.0-or-later
"""The one JSON shape of a task and of the queue, for the control socket and ``/api/status``.

``mirrord --status`` (the control socket's ``status`` and ``run`` replies) and
SlateFish's ``/api/status`` serialize a :class:`mirror.views.TaskView` with
:func:`task_json`, so a key means the same thing in both:

* a key named after a TaskView field holds that field: ``state`` is ``running``,
  ``idle`` or ``disabled``; ``upstream`` is the current or last run's (None before
  the first run; ``upstreams`` lists the configured ones);
* ``last_result`` is TaskView's ``result`` (the last run's, like ``last_start``);
* each time is ISO 8601 in the daemon's zone under its own name and epoch seconds
  under ``NAME_ts`` (both None for never);
* derived values: ``jobs_status`` (tunasync's word, as ``/jobs`` gives it: success,
  failed, syncing, paused, disabled or none), ``running``, ``message`` (what the
  result means), ``exit_status`` (-N after signal N), ``size_human``.

Pure functions of views; nothing here reads the daemon.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo

from mirror.localzone import iso
from mirror.plugins.feeds import exit_status, human_size, jobs_status, result_message
from mirror.views import RUNNING, QueueView, Snapshot, TaskView

__all__ = ["TIME_KEYS", "api_document", "queue_json", "queue_reply", "run_reply", "status_reply",
           "task_json"]

# The TaskView times, each given as ISO text and as NAME_ts.
TIME_KEYS = ("started", "last_start", "last_end", "last_success", "next_run")


def task_json(task: TaskView, zone: tzinfo) -> dict[str, object]:
    """*task* as a JSON-ready dict (see the module's docstring for the keys); times in *zone*."""
    entry: dict[str, object] = {
        "name": task.name,
        "type": task.type,
        "enabled": task.enabled,
        "state": task.state,
        "jobs_status": jobs_status(task),
        "running": task.state == RUNNING,
        "schedule": task.schedule,
        "upstream": task.upstream,
        "upstreams": list(task.upstreams),
        "pid": task.pid,
        "stage": task.stage,
        "stages": task.stages,
        "duration": task.duration,
        "last_result": task.result,
        "message": result_message(task),
        "exit_code": task.exit_code,
        "signal": task.signal,
        "exit_status": exit_status(task),
        "consecutive_failures": task.consecutive_failures,
        "failures_total": task.failures_total,
        "size": task.size,
        "size_human": human_size(task.size),
    }
    for key in TIME_KEYS:
        when: float | None = getattr(task, key)
        entry[key] = iso(when, zone)
        entry[f"{key}_ts"] = when
    return entry


def queue_json(entries: Iterable[QueueView], zone: tzinfo) -> list[dict[str, object]]:
    """The queue entries in the order given: name, kind, due (ISO and ``due_ts``), priority."""
    stamps: dict[float, str | None] = {}  # tasks often share due times; format each once
    document: list[dict[str, object]] = []
    for entry in entries:
        due = stamps.get(entry.due)
        if due is None:
            due = stamps[entry.due] = iso(entry.due, zone)
        document.append({"name": entry.name, "kind": entry.kind, "due": due,
                         "due_ts": entry.due, "priority": entry.priority})
    return document


def api_document(snapshot: Snapshot) -> dict[str, object]:
    """``/api/status``: ``{"generated", "generated_ts", "tasks": [...], "queue": [...]}``;
    tasks in name order, each as :func:`task_json` gives it."""
    zone = snapshot.zone
    return {
        "generated": iso(snapshot.taken, zone),
        "generated_ts": snapshot.taken,
        "tasks": [task_json(task, zone) for task in snapshot.tasks],
        "queue": queue_json(snapshot.queue, zone),
    }


def status_reply(snapshot: Snapshot) -> dict[str, object]:
    """The control socket's answer to ``status``: ``{"ok": True, "tasks": {name: task}}``,
    each task as :func:`task_json` gives it (so as ``/api/status`` has it), in name order."""
    return {"ok": True,
            "tasks": {task.name: task_json(task, snapshot.zone) for task in snapshot.tasks}}


def queue_reply(queue: Iterable[QueueView], zone: tzinfo) -> dict[str, object]:
    """The control socket's answer to ``queue``: ``{"ok": True, "queue": [...]}`` in due order
    (the queue alone: ``-t`` on 10,000 tasks must not cost a view of every task)."""
    return {"ok": True, "queue": queue_json(queue, zone)}


def run_reply(task: TaskView, zone: tzinfo) -> dict[str, object]:
    """The control socket's answer to ``run`` (without ``wait``): ``{"ok": True, ...}`` with
    the task just started, as :func:`task_json` gives it."""
    return {"ok": True, **task_json(task, zone)}
