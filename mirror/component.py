# SPDX-License-Identifier: GPL-3.0-or-later
"""mirror 0.8.4's ``component.get()``, as far as plugins need it.

0.8.4 plugins call ``component.get("EventManager").register_event_handler(...)``
and read ``component.get("PluginManager").config[SECTION][KEY]``. Both work:
EventManager is the calling plugin's own event registry, and the config is
plugin.ini's raw values. The scheduler is not shared with plugin threads; a
plugin asks the host API for snapshots instead (docs/plugins.md).
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_local = threading.local()


@dataclass(frozen=True)
class PluginManagerView:
    """What 0.8.4 plugins read from the PluginManager: ``config[section][key]``."""

    config: Mapping[str, Mapping[str, str]]


def bind(worker: Any, config: Mapping[str, Mapping[str, str]]) -> None:
    """Make ``get`` answer for *worker*'s plugin on this thread (the host calls this)."""
    _local.worker = worker
    _local.manager = PluginManagerView(config)


def unbind() -> None:
    """Forget this thread's plugin."""
    _local.__dict__.clear()


def get(name: str) -> Any:
    """The component called *name*: ``EventManager`` or ``PluginManager``.

    Raises:
        KeyError: any other name, or a call outside a plugin's enable() or
            its handlers; the message says what to use instead.
    """
    if name == "EventManager" and hasattr(_local, "worker"):
        return _local.worker
    if name == "PluginManager" and hasattr(_local, "manager"):
        return _local.manager
    raise KeyError(f"component {name!r} is not available to plugins here; mirror 0.9 shares "
                   "EventManager and PluginManager.config with plugins, inside enable() and "
                   "event handlers; read tasks and the queue through self.host.snapshot() "
                   "(see docs/plugins.md)")
