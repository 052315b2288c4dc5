# SPDX-License-Identifier: GPL-3.0-or-later
"""Durations as written in mirror.ini: ``1200``, ``90m``, ``12h4m``, ``1d12h``, ``30s``."""
from __future__ import annotations

import re

from mirror.i18n import _

_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")


def allowed() -> str:
    """What a duration may be, in the user's language (for messages)."""
    return _("use seconds or d/h/m/s parts in that order, e.g. 1200, 90m, 12h, 12h4m, 1d12h, "
             "30s; 0 means off")


def parse_duration(text: str) -> int:
    """Convert a duration to whole seconds.

    Accepts a plain number of seconds (``1200``) or unit parts in the order
    d, h, m, s (``1d12h``, ``12h4m``, ``90m``, ``30s``). ``0`` means off.

    Raises:
        ValueError: *text* is anything else; the message says what is allowed.
    """
    value = text.strip().lower()
    if re.fullmatch(r"[0-9]+", value):
        return int(value)
    match = _DURATION.fullmatch(value)
    if value and match and any(match.groups()):
        return sum(
            int(part) * _UNIT_SECONDS[unit]
            for part, unit in zip(match.groups(), "dhms")
            if part is not None
        )
    raise ValueError(_("'{text}' is not a duration ({allowed})").format(text=text,
                                                                         allowed=allowed()))


def format_duration(seconds: int) -> str:
    """Render *seconds* in the shortest d/h/m/s form (``0`` stays ``0``)."""
    if seconds <= 0:
        return "0"
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
