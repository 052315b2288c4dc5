# SPDX-License-Identifier: GPL-3.0-or-later
"""mirror 0.8.4's plugin wrapper, kept so that plugins written for 0.8.4 load unchanged.

A 0.8.4 entry point names a PluginInitBase subclass whose ``_plugin_class`` is
the real plugin; constructing the wrapper constructs the plugin as ``.plugin``.
"""
from __future__ import annotations

from typing import Any, ClassVar

from mirror.pluginbase import PluginBase


class PluginInitBase:
    """Wraps ``_plugin_class``; enable() and disable() are passed on to it."""

    enabled: ClassVar[bool] = True
    _plugin_class: Any = None

    def __init__(self, plugin_name: str) -> None:
        if self._plugin_class is None:
            raise TypeError(f"{type(self).__name__} sets no _plugin_class")
        self.plugin: PluginBase = self._plugin_class(plugin_name)

    def enable(self) -> None:
        self.plugin.enable()

    def disable(self) -> None:
        self.plugin.disable()
