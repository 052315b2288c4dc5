# SPDX-License-Identifier: GPL-3.0-or-later
"""Troublemaker: a badly behaved plugin, for tests. Its handlers raise, or block for
``[troublemaker] sleep`` seconds when a task starts; mirrord must carry on regardless."""
import time

from mirror.plugin import PluginBase


class Troublemaker(PluginBase):
    def enable(self):
        self.sleep = float(self.settings.get("sleep", "30"))
        self.host.register_event_handler("TaskEnqueueEvent", self.explode)
        self.host.register_event_handler("TaskStartEvent", self.block)

    def explode(self, taskname):
        raise RuntimeError(f"troublemaker exploded on {taskname}")

    def block(self, taskname, taskpid):
        time.sleep(self.sleep)
