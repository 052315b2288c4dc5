# SPDX-License-Identifier: GPL-3.0-or-later
"""Recorder: appends each classic event, with its arguments, to a JSON-lines file.

Written against mirror 0.8.4's API only (component.get, register_event_handler),
and configured by plugin.ini's ``[recorder] record_file``. 0.8.4 plugins import
``mirror.component`` and ``mirror.pluginbase``, which still work; this one takes the
same objects from mirror.plugin, the one module plugins need.
"""
import json
import threading
import time

from mirror.plugin import PluginBase, component

CLASSIC_EVENTS = ("MirrorStartEvent", "TaskEnqueueEvent", "PreTaskStartEvent", "TaskStartEvent",
                  "TaskStopEvent", "RunSystemTaskEvent")


class Recorder(PluginBase):
    def enable(self):
        config = component.get("PluginManager").config
        self.record_file = config["recorder"]["record_file"]
        event_manager = component.get("EventManager")
        for event in CLASSIC_EVENTS:
            event_manager.register_event_handler(event, self._handler_for(event))

    def disable(self):
        self._write({"event": "disabled"})

    def _handler_for(self, event):
        def record(*args):
            if event == "RunSystemTaskEvent":
                args = [{"name": args[0].name, "time": args[0].time}]
            self._write({"event": event, "args": list(args)})
        return record

    def _write(self, entry):
        entry.update(thread=threading.current_thread().name, at=time.time())
        with open(self.record_file, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
