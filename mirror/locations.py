# SPDX-License-Identifier: GPL-3.0-or-later
"""Where things are: the config files, the pidfile and the control socket.

Kept free of heavy imports, so that client commands such as ``mirrord -t`` start fast.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MIRROR_INI = "mirror.ini"
PLUGIN_INI = "plugin.ini"
SYSTEM_CONFIG_DIR = "/etc/mirror"
PIDFILE_NAME = "mirrord.pid"
SOCKET_NAME = "mirrord.sock"


@dataclass(frozen=True)
class ConfigLocation:
    """Where the config files are: the directory, mirror.ini and plugin.ini."""

    directory: Path
    mirror_ini: Path
    plugin_ini: Path


def default_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``/etc/mirror`` if it exists, else ``$XDG_CONFIG_HOME/mirror`` (``~/.config/mirror``)."""
    if environ is None:
        environ = os.environ
    if os.path.isdir(SYSTEM_CONFIG_DIR):
        return Path(SYSTEM_CONFIG_DIR)
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mirror"


def locate_config(option: str | None, environ: dict[str, str] | None = None) -> ConfigLocation:
    """Resolve ``-c``: a directory holding mirror.ini, or the mirror.ini file itself.

    Args:
        option: the ``-c`` value, or None for the default location.
        environ: the environment (for ``XDG_CONFIG_HOME``); defaults to os.environ.
    """
    if option is None:
        directory = default_config_dir(environ)
        return ConfigLocation(directory, directory / MIRROR_INI, directory / PLUGIN_INI)
    path = Path(option)
    if path.is_dir() or (not path.exists() and not path.suffix):
        return ConfigLocation(path, path / MIRROR_INI, path / PLUGIN_INI)
    return ConfigLocation(path.parent, path, path.parent / PLUGIN_INI)


def pidfile_path(location: ConfigLocation, option: str | None) -> str:
    """``-P`` if given, else mirrord.pid in the config directory (absolute)."""
    return os.path.abspath(option or str(location.directory / PIDFILE_NAME))


def socket_path(pidfile: str) -> str:
    """The control socket sits beside the pidfile."""
    return os.path.join(os.path.dirname(pidfile), SOCKET_NAME)
