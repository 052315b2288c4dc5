# SPDX-License-Identifier: GPL-3.0-or-later
"""Entry point of the Recorder plugin, in mirror 0.8.4's style: a PluginInitBase wrapper.

(0.8.4 imported it from ``mirror.plugininit``, which still works; mirror.plugin has it too.)
"""
from mirror.plugin import PluginInitBase


class MirrorPlugin(PluginInitBase):
    """What the entry point names; mirrord constructs it with the plugin's name."""

    enabled = True

    def __init__(self, plugin_name):
        from .recorder import Recorder

        self._plugin_class = Recorder
        super().__init__(plugin_name)
