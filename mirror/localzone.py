# SPDX-License-Identifier: GPL-3.0-or-later
"""The local time zone, as the daemon and ``--check`` use it (honours ``TZ``), and times in it."""
from __future__ import annotations

import os
from datetime import datetime, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SYSTEM_ZONE_FILE = "/etc/localtime"


def _zone_from_file(path: str) -> tzinfo | None:
    try:
        with open(path, "rb") as handle:
            return ZoneInfo.from_file(handle, key=path)
    except (OSError, ValueError):
        return None


def local_zone() -> tzinfo:
    """Return the zone that local time follows.

    ``TZ`` wins when set: a zone name (``Europe/Berlin``, optionally with a
    leading ``:``) or a path to a zone file. A POSIX rule string such as
    ``CST-8`` that no zone file matches falls back to the C library's current
    offset. Without ``TZ``, ``/etc/localtime`` is used, and UTC if that is
    missing. Never raises.
    """
    name = os.environ.get("TZ")
    if name:
        name = name[1:] if name.startswith(":") else name
        if name.startswith("/"):
            zone = _zone_from_file(name)
            if zone is not None:
                return zone
        else:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                pass
        return datetime.now().astimezone().tzinfo or timezone.utc
    return _zone_from_file(SYSTEM_ZONE_FILE) or timezone.utc


def iso(when: float | None, zone: tzinfo) -> str | None:
    """Epoch seconds as ISO-8601 with the zone's offset, or None."""
    return None if when is None else datetime.fromtimestamp(when, zone).isoformat(
        timespec="seconds")
