# SPDX-License-Identifier: GPL-3.0-or-later
"""Starter: a plugin written against mirror's own API (PluginBase, SETTINGS, self.host).

When the daemon starts, it asks for a run of ``[starter] task``; when that run
finishes, it appends what it saw (the request's reply, the event, a snapshot of
the task) to ``[starter] record_file`` as one JSON line.
"""
from __future__ import annotations

import json
import os

from mirror.plugin import PluginBase, Setting


def absolute_path(text: str) -> str:
    if not os.path.isabs(text):
        raise ValueError(f"'{text}' is not an absolute path")
    return text


class Starter(PluginBase):
    SETTINGS = (Setting("task", str, "", "the task to run when mirrord starts"),
                Setting("record_file", absolute_path, "/tmp/starter.jsonl", "where to write"))

    def enable(self):
        self.host.register_event_handler("MirrorStartEvent", self.on_start)
        self.host.register_event_handler("RunFinishedEvent", self.on_finished)

    def on_start(self):
        self.reply = self.host.request({"command": "run", "name": self.settings["task"]})

    def on_finished(self, event):
        task = self.host.snapshot().task(event.taskname)
        entry = {"reply": self.reply, "task": event.taskname, "result": event.result,
                 "kind": event.kind, "log_path": event.log_path,
                 "snapshot": {"state": task.state, "result": task.result,
                              "last_success": task.last_success}}
        with open(self.settings["record_file"], "a") as handle:
            handle.write(json.dumps(entry) + "\n")
