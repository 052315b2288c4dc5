# SPDX-License-Identifier: GPL-3.0-or-later
"""An independent next-run computation for tests.

It shares no code with mirror.cron and does not use croniter: it parses a
plain subset of cron (numbers, *, */n, a-b, a-b/n, lists) by hand and walks
real time minute by minute in UTC, reading local wall time through zoneinfo.

Rules it encodes, from the spec:
* minute field ``*`` with an hour field other than ``*`` means minute 0;
* day-of-month and day-of-week are OR-ed when both are restricted;
* a matching wall time inside a spring-forward gap runs at the first instant
  after the gap;
* in a fall-back overlap, a task whose hour field has no ``*`` runs only at the
  first occurrence; one whose hour field has a ``*`` runs at both.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

MINUTE = timedelta(minutes=1)


def _field(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/")
            step = int(step_text)
        if part == "*":
            start, stop = low, high
        elif "-" in part:
            start, stop = (int(x) for x in part.split("-"))
        else:
            start = stop = int(part)
        values.update(range(start, stop + 1, step))
    return values


class OracleCron:
    def __init__(self, expression: str) -> None:
        minute, hour, dom, month, dow = expression.split()
        if minute == "*" and hour != "*":
            minute = "0"
        self.minutes = _field(minute, 0, 59)
        self.hours = _field(hour, 0, 23)
        self.doms = _field(dom, 1, 31)
        self.months = _field(month, 1, 12)
        self.dows = {d % 7 for d in _field(dow, 0, 7)}
        self.dom_star = dom == "*"
        self.dow_star = dow == "*"
        self.hour_star = "*" in hour

    def wall_matches(self, wall: datetime) -> bool:
        if wall.minute not in self.minutes or wall.hour not in self.hours:
            return False
        if wall.month not in self.months:
            return False
        dom_ok = wall.day in self.doms
        dow_ok = (wall.isoweekday() % 7) in self.dows
        if not self.dom_star and not self.dow_star:
            return dom_ok or dow_ok
        return dom_ok and dow_ok

    def runs_at(self, instant: datetime, zone: tzinfo) -> bool:
        """Whether the task runs at the UTC minute *instant*."""
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None)
        previous = (instant - MINUTE).astimezone(zone)
        jump = local.utcoffset() - previous.utcoffset()
        if jump > timedelta(0):
            # Spring forward: wall times from previous+1min up to local were skipped.
            skipped = previous.replace(tzinfo=None) + MINUTE
            while skipped < wall:
                if self.wall_matches(skipped):
                    return True
                skipped += MINUTE
        if not self.wall_matches(wall):
            return False
        # zoneinfo marks the second occurrence of a repeated wall time with fold=1.
        return local.fold == 0 or self.hour_star

    def next_after(self, since: datetime, zone: tzinfo, horizon_days: int = 9) -> datetime:
        instant = since.astimezone(timezone.utc).replace(second=0, microsecond=0) + MINUTE
        end = instant + timedelta(days=horizon_days)
        while instant < end:
            if self.runs_at(instant, zone):
                return instant.astimezone(zone)
            instant += MINUTE
        raise AssertionError("no run within the oracle's horizon")

