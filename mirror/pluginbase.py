# SPDX-License-Identifier: GPL-3.0-or-later
"""The base class of mirror plugins (the 0.8.4 API, plus the host API and typed settings).

A plugin is a class registered as an entry point in the group
``mirror.plugin.mirrorplugin``. mirrord constructs it with its entry-point
name, sets :attr:`host` and :attr:`settings`, then calls :meth:`enable`.
See docs/plugins.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from mirror.pluginsettings import Setting

if TYPE_CHECKING:
    from mirror.pluginhost import HostAPI


class PluginBase:
    """Subclass this; override :meth:`enable` (subscribe to events) and, if needed, :meth:`disable`.

    Class attributes:
        enabled: False keeps mirrord from loading the plugin at all.
        SETTINGS: the keys the plugin's plugin.ini section may hold, with their
            types and defaults; mirrord validates them (``mirrord --check`` too).
    """

    enabled: ClassVar[bool] = True
    SETTINGS: ClassVar[tuple[Setting[Any], ...]] = ()

    def __init__(self, name: str) -> None:
        self.name = name
        self.host: HostAPI
        self.settings: dict[str, Any] = {}

    @staticmethod
    def check_settings(values: dict[str, Any]) -> list[str]:
        """What is wrong with the validated *values* taken together; [] when nothing is.
        Reported by ``mirrord --check`` at the section's line, and the plugin stays off."""
        return []

    def enable(self) -> None:
        """Called once, on the daemon's main thread before it serves; raise to refuse."""

    def disable(self) -> None:
        """Called on the plugin's thread when the daemon stops, after the last event."""
