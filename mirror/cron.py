# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``time`` key: cron expressions in mirror's dialect, and their next run.

Fields are parsed the way croniter parses them (ranges, steps, lists, names,
``L``, ``#``, @-macros). The next run is computed here, on local wall time, so
that daylight-saving changes follow the documented rules:

* a matching wall time inside a spring-forward gap runs at the first valid
  instant after the gap;
* on a fall-back day, a task whose hour field has no ``*`` runs once (at the
  first occurrence); a task whose hour field has a ``*`` runs at every
  matching instant of real time, so in both repeated hours.

Kept from mirror 0.8.4: when the minute field is ``*`` and the hour field is
not, the minute field means ``0`` (``* */2 * * *`` runs every two hours at :00).
"""
from __future__ import annotations

import functools
import math
import re
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import ClassVar

from croniter import croniter

from mirror.i18n import _
from mirror.zoneoffsets import OFFSET_REACH, ZoneOffsets, offsets_for

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Larger than any real-world UTC offset change (DST is 1h, Lord Howe 30m,
# historical double summer time 2h).
MAX_SHIFT = 3 * 3600
SEARCH_YEARS = 60
LAST = -1  # "L" as an occurrence of a weekday in its month
_MINUTE = timedelta(minutes=1)
# period_seconds looks at the four years from here: a Monday, 1 January of a year after
# which the third is a leap year.
PERIOD_ANCHOR = date(2001, 1, 1)
PERIOD_DAYS = 4 * 365 + 1
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def field_help() -> str:
    """What a ``time`` value may be, in the user's language (for messages)."""
    return _("five fields: minute 0-59, hour 0-23, day-of-month 1-31 or L, month 1-12 or jan-dec, "
             "day-of-week 0-7 or sun-sat (with 5#2 or L5 for the 2nd or last Friday); "
             "each * or a value, range a-b, step */n or a-b/n, or a comma list; "
             "or one of {macros}").format(macros=", ".join(MACROS))


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month]


MONTH_NAMES = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
DAY_NAMES = {name: number for number, name in enumerate(
    ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_NTH = re.compile(r"(?P<day>\w+)#(?P<nth>[1-5])|l(?P<last>\w+)")


def _value(text: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names[text] if text in names else int(text) if re.fullmatch("[0-9]+", text) else None
    if value is None or not low <= value <= high:
        raise ValueError(text)
    return value


def _expand(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    """Expand one field (``*``, ``a``, ``a-b``, ``*/n``, ``a-b/n``, ``a/n``, lists; names)."""
    names = names or {}
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = int(step_text) if re.fullmatch("[0-9]+", step_text) else 0 if slash else 1
        if step < 1:
            raise ValueError(part)
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            first_text, _dash, last_text = base.partition("-")
            first, last = _value(first_text, low, high, names), _value(last_text, low, high, names)
        else:
            first = _value(base, low, high, names)
            last = high if slash else first
        if first <= last:
            span = list(range(first, last + 1))
        else:  # a wrapping range such as fri-mon, as croniter reads it
            span = list(range(first, high + 1)) + list(range(low, last + 1))
        values.update(span[::step])
    return values


@dataclass(frozen=True)
class CronSchedule:
    """A parsed ``time`` expression. Build it with :meth:`parse`."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    last_day_of_month: bool
    months: tuple[int, ...]
    weekdays: frozenset[int]  # 0 = Sunday
    nth_weekdays: tuple[tuple[int, frozenset[int]], ...]  # (weekday, occurrences; LAST = -1)
    dom_restricted: bool
    dow_restricted: bool
    hour_has_star: bool
    from_end: ClassVar[bool] = False  # runs at wall times, not counted from a run's end
    # The last next_instant answer, (after, offsets, instant): a burst of tasks that share an
    # expression (and so this object) asks the same question once per task. One tuple,
    # replaced whole, so that the plugin thread may ask too.
    _last_answer: list[tuple[float, ZoneOffsets, int] | None] = field(
        default_factory=lambda: [None], init=False, repr=False, compare=False, hash=False)

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        """Parse a ``time`` value (schedules are immutable, so equal texts share one).

        Args:
            text: the value as written, e.g. ``10 0,6,13,20 * * *`` or ``@daily``.

        Returns:
            The schedule.

        Raises:
            ValueError: the text is not an expression of the dialect, or it
                can never match; the message says what is allowed.
        """
        return _parse_cached(" ".join(text.split()))

    @classmethod
    def _parse_uncached(cls, written: str) -> CronSchedule:
        fields = MACROS.get(written.lower(), written).split()
        if written.startswith("@") and written.lower() not in MACROS:
            raise ValueError(_("unknown macro '{text}' ({allowed})").format(
                text=written, allowed=field_help()))
        if len(fields) != 5:
            raise ValueError(_("'{text}' has {count} fields, not 5 ({allowed})").format(
                text=written, count=len(fields), allowed=field_help()))
        if "w" in fields[2].lower():
            raise ValueError(_("'{text}': W (nearest weekday) is not supported ({allowed})").format(
                text=written, allowed=field_help()))
        if fields[0] == "*" and fields[1] != "*":
            fields[0] = "0"
        try:
            croniter(" ".join(fields))  # the accepted syntax is croniter's
        except Exception as error:  # croniter raises assorted types on bad input
            raise ValueError(_("'{text}' is not a cron expression: {reason} ({allowed})").format(
                text=written, reason=error, allowed=field_help())) from None
        try:
            schedule = cls._from_fields(written, [field.lower() for field in fields])
        except ValueError as error:
            raise ValueError(_("'{text}' is not a cron expression: cannot read '{part}' "
                               "({allowed})").format(text=written, part=error,
                                                     allowed=field_help())) from None
        try:
            schedule.next_wall_match(datetime(2001, 1, 1))
        except LookupError:
            raise ValueError(_("'{text}' never matches a date ({allowed})").format(
                text=written, allowed=field_help())) from None
        return schedule

    @classmethod
    def _from_fields(cls, written: str, fields: list[str]) -> CronSchedule:
        """Expand the five fields (lower-cased). croniter validated the syntax, but its
        expansion is not used: it reads single-value ranges such as ``5-5`` as ``*``."""
        minute, hour, dom, month, dow = fields
        day_parts = [part for part in dom.split(",") if part != "l"]
        days = _expand(",".join(day_parts), 1, 31) if day_parts else set()
        weekdays: set[int] = set()
        nth: dict[int, set[int]] = {}
        for part in dow.split(","):
            special = _NTH.fullmatch(part)
            if special:
                day = _value(special.group("day") or special.group("last"), 0, 7, DAY_NAMES) % 7
                nth.setdefault(day, set()).add(
                    int(special.group("nth")) if special.group("nth") else LAST)
                weekdays.add(day)
            else:
                weekdays.update(value % 7 for value in _expand(part, 0, 7, DAY_NAMES))
        return cls(
            expression=written,
            minutes=tuple(sorted(_expand(minute, 0, 59))),
            hours=tuple(sorted(_expand(hour, 0, 23))),
            days=frozenset(days),
            last_day_of_month="l" in dom.split(","),
            months=tuple(sorted(_expand(month, 1, 12, MONTH_NAMES))),
            weekdays=frozenset(weekdays),
            nth_weekdays=tuple((day, frozenset(occurrences))
                               for day, occurrences in sorted(nth.items())),
            dom_restricted=dom not in ("*", "?"),
            dow_restricted=dow not in ("*", "?"),
            hour_has_star="*" in hour,
        )

    def _day_matches(self, year: int, month: int, day: int, days_in_month: int) -> bool:
        dom_ok = day in self.days or (self.last_day_of_month and day == days_in_month)
        if not self.dow_restricted:
            return dom_ok
        weekday = (date(year, month, day).weekday() + 1) % 7
        dow_ok = weekday in self.weekdays
        for nth_day, occurrences in self.nth_weekdays:
            if nth_day == weekday:
                dow_ok = ((day - 1) // 7 + 1) in occurrences or (
                    LAST in occurrences and day + 7 > days_in_month)
        if self.dom_restricted and self.dow_restricted:
            return dom_ok or dow_ok
        return dom_ok and dow_ok

    def next_wall_match(self, start: datetime) -> datetime:
        """Return the first matching naive wall time at or after *start* (rounded up to a minute).

        Raises:
            LookupError: nothing matches within SEARCH_YEARS years.
        """
        if start.second or start.microsecond:
            start = start.replace(second=0, microsecond=0) + _MINUTE
        return datetime(*self._match_fields(
            start.year, start.month, start.day, start.hour, start.minute))

    def _match_fields(self, year: int, month: int, day: int, hour: int,
                      minute: int) -> tuple[int, int, int, int, int]:
        """The first matching (year, month, day, hour, minute) at or after the given one.

        Raises:
            LookupError: nothing matches within SEARCH_YEARS years.
        """
        last_year = year + SEARCH_YEARS
        while year <= last_year:
            if month not in self.months:
                index = bisect_left(self.months, month)
                if index == len(self.months):
                    year, month = year + 1, self.months[0]
                else:
                    month = self.months[index]
                day, hour, minute = 1, 0, 0
                continue
            days_in_month = _days_in_month(year, month)
            if day > days_in_month:
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
                day, hour, minute = 1, 0, 0
                continue
            if not self._day_matches(year, month, day, days_in_month):
                day, hour, minute = day + 1, 0, 0
                continue
            index = bisect_left(self.hours, hour)
            if index == len(self.hours):
                day, hour, minute = day + 1, 0, 0
                continue
            if self.hours[index] != hour:
                hour, minute = self.hours[index], 0
            index = bisect_left(self.minutes, minute)
            if index == len(self.minutes):
                hour, minute = hour + 1, 0
                continue
            return year, month, day, hour, self.minutes[index]
        raise LookupError(self.expression)

    def next_after(self, after: datetime, zone: tzinfo) -> datetime:
        """Return the first run strictly after the instant *after*.

        Args:
            after: an aware datetime.
            zone: the zone whose wall time the expression is read in.

        Returns:
            An aware datetime in *zone*.

        Raises:
            ValueError: *after* is naive.
        """
        if after.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        return datetime.fromtimestamp(self.next_instant(after.timestamp(), offsets_for(zone)), zone)

    def next_instant(self, after: float, offsets: ZoneOffsets) -> int:
        """Return the epoch second of the first run strictly after the epoch instant *after*."""
        last = self._last_answer[0]
        if last is not None and last[0] == after and last[1] is offsets:
            return last[2]
        instant = self._next_instant(after, offsets)
        self._last_answer[0] = (after, offsets, instant)
        return instant

    def _next_instant(self, after: float, offsets: ZoneOffsets) -> int:
        offset = offsets.stable_offset(after - 2 * OFFSET_REACH, after + 2 * OFFSET_REACH)
        if offset is not None:
            # Fast path: no offset change anywhere near, so a wall time within
            # OFFSET_REACH of *after* maps to exactly one instant.
            wall = self._next_wall(math.floor(after + offset) // 60 * 60 + 60)
            if after - OFFSET_REACH <= wall <= after + OFFSET_REACH:
                return wall - offset
        # Near an offset change the instants of consecutive wall times are not
        # in order, so every wall time that could map past *after* is examined.
        offset = offsets.stable_offset(after - MAX_SHIFT, after + MAX_SHIFT)
        near_change = offset is None
        if offset is None:
            earliest = math.floor(after) - MAX_SHIFT
            wall = earliest + offsets.offset_at(earliest)
        else:
            wall = math.floor(after + offset) // 60 * 60 + 60
        best: int | None = None
        wall_limit = 0
        while True:
            wall = self._next_wall(wall)
            if best is not None and wall > wall_limit:
                return best
            for instant in self._run_instants(wall, offsets):
                if instant > after and (best is None or instant < best):
                    best = instant
                    wall_limit = best + offsets.offset_at(best) + MAX_SHIFT
            if best is not None and not near_change:
                return best
            wall += 60

    def _next_wall(self, wall: int) -> int:
        """next_wall_match on local seconds since the epoch (minute-aligned, inclusive)."""
        fields = time.gmtime(wall)
        year, month, day, hour, minute = self._match_fields(
            fields.tm_year, fields.tm_mon, fields.tm_mday, fields.tm_hour, fields.tm_min)
        days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
        return days * 86400 + hour * 3600 + minute * 60

    def _run_instants(self, wall: int, offsets: ZoneOffsets) -> list[int]:
        """The instants at which the task runs for the matching wall time *wall*."""
        instants, gap_end = offsets.instants_of_wall(wall)
        if gap_end is not None:
            return [gap_end]
        return instants if self.hour_has_star else instants[:1]

    @functools.cached_property
    def period_seconds(self) -> int:
        """The longest wait between two consecutive runs, in wall-clock seconds (a
        daylight-saving change is not counted): how far the mirror falls behind between
        runs when every run succeeds. ``0 */6 * * *`` gives 21600, ``0 2 * * 1-5`` 259200.

        Examined over the four years from PERIOD_ANCHOR (every weekday of every month, one
        29 February), day by day, so it costs about a millisecond once per expression.
        """
        times = sorted(hour * 3600 + minute * 60 for hour in self.hours for minute in self.minutes)
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        previous: int | None = None
        for offset in range(PERIOD_DAYS):
            day = PERIOD_ANCHOR + timedelta(days=offset)
            if day.month in self.months and self._day_matches(
                    day.year, day.month, day.day, _days_in_month(day.year, day.month)):
                ordinal = day.toordinal()
                if previous is not None:
                    gaps.append((ordinal - previous) * 86400 - times[-1] + times[0])
                previous = ordinal
        if len(gaps) < len(times):  # at most one matching day in four years
            return PERIOD_DAYS * 86400
        return max(gaps)


@functools.lru_cache(maxsize=4096)
def _parse_cached(written: str) -> CronSchedule:
    # A config of a thousand tasks typically uses a few dozen distinct
    # expressions; croniter's validation dominates the cost of a parse.
    return CronSchedule._parse_uncached(written)
