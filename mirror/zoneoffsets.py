# SPDX-License-Identifier: GPL-3.0-or-later
"""A time zone's UTC offsets as a table of transitions, for integer-second arithmetic.

Converting with datetime objects costs microseconds per call; the scheduler
converts often, so it looks offsets up in a sorted table instead. The table is
filled from the tzinfo itself, a few years at a time, by probing every six
hours and bisecting each change to the second (real zones never change twice
within six hours).
"""
from __future__ import annotations

import functools
from bisect import bisect_right
from datetime import datetime, timezone, tzinfo

PROBE_STEP = 6 * 3600
YEAR = 365 * 86400
# Wider than any UTC offset (−12h … +14h), so that every instant showing a
# given wall time lies within this distance of it.
OFFSET_REACH = 15 * 3600


class ZoneOffsets:
    """UTC offsets of *zone* at instants given as epoch seconds."""

    def __init__(self, zone: tzinfo, around: float = 0.0) -> None:
        self.zone = zone
        start = int(around) - YEAR
        self._low = start
        self._high = start
        self._starts: list[int] = [start]
        self._offsets: list[int] = [self._probe(start)]
        self._extend_to(start + 3 * YEAR)

    def _probe(self, instant: int) -> int:
        offset = datetime.fromtimestamp(instant, timezone.utc).astimezone(self.zone).utcoffset()
        return int(offset.total_seconds()) if offset is not None else 0

    def _changes(self, start: int, end: int) -> list[tuple[int, int]]:
        """The (instant, new offset) changes in (start, end]."""
        changes = []
        previous = self._probe(start)
        at = start
        while at < end:
            probe = min(at + PROBE_STEP, end)
            offset = self._probe(probe)
            if offset != previous:
                low, high = at, probe
                while high - low > 1:
                    middle = (low + high) // 2
                    if self._probe(middle) == previous:
                        low = middle
                    else:
                        high = middle
                changes.append((high, offset))
                previous = offset
            at = probe
        return changes

    def _extend_to(self, instant: float) -> None:
        while instant >= self._high:
            end = self._high + YEAR
            for at, offset in self._changes(self._high, end):
                self._starts.append(at)
                self._offsets.append(offset)
            self._high = end
        while instant < self._low:
            start = self._low - YEAR
            changes = self._changes(start, self._low)
            self._starts = [start] + [at for at, _ in changes] + self._starts[1:]
            self._offsets = [self._probe(start)] + [offset for _, offset in changes] \
                + self._offsets[1:]
            self._low = start

    def offset_at(self, instant: float) -> int:
        """The UTC offset, in seconds, at the epoch instant *instant*."""
        if not self._low <= instant < self._high:
            self._extend_to(instant)
        return self._offsets[bisect_right(self._starts, instant) - 1]

    def stable_offset(self, start: float, end: float) -> int | None:
        """The offset over [start, end] if it does not change there, else None."""
        if not (self._low <= start and end < self._high):
            self._extend_to(start)
            self._extend_to(end)
        index = bisect_right(self._starts, start)
        if index < len(self._starts) and self._starts[index] <= end:
            return None
        return self._offsets[index - 1]

    def changes_between(self, start: float, end: float) -> list[tuple[int, int, int]]:
        """The offset changes in (start, end], as (instant, old offset, new offset)."""
        self.offset_at(start)
        self.offset_at(end)
        first = bisect_right(self._starts, start)
        last = bisect_right(self._starts, end)
        return [(self._starts[index], self._offsets[index - 1], self._offsets[index])
                for index in range(max(first, 1), last)]

    def instants_of_wall(self, wall: int) -> tuple[list[int], int | None]:
        """The epoch instants whose local wall time is *wall* (local seconds since the epoch).

        Returns:
            ``(instants, None)`` with one instant, or two in a fall-back
            overlap (earliest first); or ``([], end)`` when *wall* falls in a
            spring-forward gap, *end* being the first instant after the gap.
        """
        offset = self.stable_offset(wall - OFFSET_REACH, wall + OFFSET_REACH)
        if offset is not None:
            return [wall - offset], None
        changes = self.changes_between(wall - OFFSET_REACH, wall + OFFSET_REACH)
        offsets = sorted({self.offset_at(wall - OFFSET_REACH)} | {new for _, _, new in changes},
                         reverse=True)
        instants = [wall - offset for offset in offsets if self.offset_at(wall - offset) == offset]
        if instants:
            return instants, None
        for at, old, new in changes:
            if at + old <= wall < at + new:
                return [], at
        raise LookupError(f"wall time {wall} is neither shown nor skipped")  # pragma: no cover


@functools.lru_cache(maxsize=32)
def offsets_for(zone: tzinfo) -> ZoneOffsets:
    """A shared ZoneOffsets for *zone* (zones are immutable, so sharing is safe)."""
    return ZoneOffsets(zone, datetime.now(timezone.utc).timestamp())
