# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``interval`` key: a run every so long after the last run ended (tunasync's schedule),
and ``randomdelay``: a stable per-task offset that spreads the starts of many tasks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mirror.digest import sha256_hex
from mirror.durations import format_duration, parse_duration
from mirror.i18n import _

INTERVAL_PREFIX = "every "


@dataclass(frozen=True)
class IntervalSchedule:
    """Runs *seconds* after the last run ended; the first at once (or that long after the
    last recorded end). The core queues the next run when a run ends (``from_end``)."""

    seconds: int
    from_end: ClassVar[bool] = True

    @classmethod
    def parse(cls, text: str) -> IntervalSchedule:
        """An ``interval`` value: a duration of at least a minute.

        Raises:
            ValueError: *text* is not a duration, or is shorter than a minute.
        """
        seconds = parse_duration(text)
        if seconds < 60:
            raise ValueError(_("'{text}' is shorter than a minute; an interval counts from "
                               "the end of one run to the start of the next, e.g. 6h")
                             .format(text=text))
        return cls(seconds)

    @property
    def expression(self) -> str:
        """How ``-t``, ``--check`` and the status page show it: ``every 6h``."""
        return INTERVAL_PREFIX + format_duration(self.seconds)

    @property
    def period_seconds(self) -> int:
        """The wait between the end of one run and the start of the next."""
        return self.seconds

    def next_instant(self, after: float, _offsets: object = None) -> float:
        """The run due *seconds* after *after* (the end of the last run)."""
        return after + self.seconds


def spread_offset(name: str, randomdelay: int) -> int:
    """Task *name*'s start offset in [0, *randomdelay*) seconds: the same on every start of
    mirrord and on every host (it comes from the name), so that ``-t`` is predictable and
    tasks with one schedule do not all start in the same second."""
    if randomdelay <= 0:
        return 0
    digest = sha256_hex(name.encode("utf-8", "surrogatepass"))
    return int(digest[:16], 16) % randomdelay
