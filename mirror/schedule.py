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

import calendar
import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo

from croniter import croniter

from mirror.i18n import _

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELD_HELP = (
    "five fields: minute 0-59, hour 0-23, day-of-month 1-31 or L, month 1-12 or jan-dec, "
    "day-of-week 0-7 or sun-sat (with 5#2 or L5 for the 2nd or last Friday); "
    "each * or a value, range a-b, step */n or a-b/n, or a comma list; "
    "or one of " + ", ".join(MACROS)
)
# Larger than any real-world UTC offset change (DST is 1h, Lord Howe 30m,
# historical double summer time 2h).
MAX_SHIFT = timedelta(hours=3)
SEARCH_YEARS = 60
LAST = -1  # "L" as an occurrence of a weekday in its month
_MINUTE = timedelta(minutes=1)


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

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        """Parse a ``time`` value.

        Args:
            text: the value as written, e.g. ``10 0,6,13,20 * * *`` or ``@daily``.

        Returns:
            The schedule.

        Raises:
            ValueError: the text is not an expression of the dialect, or it
                can never match; the message says what is allowed.
        """
        written = " ".join(text.split())
        fields = MACROS.get(written.lower(), written).split()
        if written.startswith("@") and written.lower() not in MACROS:
            raise ValueError(_("unknown macro '{text}' ({allowed})").format(
                text=written, allowed=FIELD_HELP))
        if len(fields) != 5:
            raise ValueError(_("'{text}' has {count} fields, not 5 ({allowed})").format(
                text=written, count=len(fields), allowed=FIELD_HELP))
        if "w" in fields[2].lower():
            raise ValueError(_("'{text}': W (nearest weekday) is not supported ({allowed})").format(
                text=written, allowed=FIELD_HELP))
        if fields[0] == "*" and fields[1] != "*":
            fields[0] = "0"
        try:
            croniter(" ".join(fields))  # the accepted syntax is croniter's
        except Exception as error:  # croniter raises assorted types on bad input
            raise ValueError(_("'{text}' is not a cron expression: {reason} ({allowed})").format(
                text=written, reason=error, allowed=FIELD_HELP)) from None
        try:
            schedule = cls._from_fields(written, [field.lower() for field in fields])
        except ValueError as error:
            raise ValueError(_("'{text}' is not a cron expression: cannot read '{part}' "
                               "({allowed})").format(text=written, part=error,
                                                     allowed=FIELD_HELP)) from None
        try:
            schedule.next_wall_match(datetime(2001, 1, 1))
        except LookupError:
            raise ValueError(_("'{text}' never matches a date ({allowed})").format(
                text=written, allowed=FIELD_HELP)) from None
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

    def day_matches(self, day: date) -> bool:
        """Tell whether the date fields (day-of-month, month, day-of-week) match *day*.

        When both day-of-month and day-of-week are restricted, either may match,
        as in standard cron; otherwise both must.
        """
        if day.month not in self.months:
            return False
        days_in_month = calendar.monthrange(day.year, day.month)[1]
        return self._day_matches(day.year, day.month, day.day, days_in_month)

    def _day_matches(self, year: int, month: int, day: int, days_in_month: int) -> bool:
        dom_ok = day in self.days or (self.last_day_of_month and day == days_in_month)
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
        year, month, day = start.year, start.month, start.day
        hour, minute = start.hour, start.minute
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
            days_in_month = calendar.monthrange(year, month)[1]
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
            return datetime(year, month, day, hour, self.minutes[index])
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
        # Near an offset change the instants of consecutive wall times are not
        # in order, so every wall time that could map past *after* is examined.
        near_change = (after - MAX_SHIFT).astimezone(zone).utcoffset() != (
            after + MAX_SHIFT).astimezone(zone).utcoffset()
        if near_change:
            wall = (after - MAX_SHIFT).astimezone(zone).replace(tzinfo=None)
        else:
            wall = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0) + _MINUTE
        after_utc = after.astimezone(timezone.utc)
        best: datetime | None = None
        wall_limit: datetime | None = None
        while True:
            wall = self.next_wall_match(wall)
            if best is not None and wall_limit is not None and wall > wall_limit:
                return best.astimezone(zone)
            for instant in self._instants(wall, zone):
                if instant > after_utc and (best is None or instant < best):
                    best = instant
                    wall_limit = best.astimezone(zone).replace(tzinfo=None) + MAX_SHIFT
            if best is not None and not near_change:
                return best.astimezone(zone)
            wall += _MINUTE

    def _instants(self, wall: datetime, zone: tzinfo) -> list[datetime]:
        """The instants (aware, in UTC) at which wall time *wall* runs."""
        # Aware datetimes sharing a tzinfo compare by wall time, ignoring fold,
        # so everything is compared in UTC.
        first = wall.replace(tzinfo=zone).astimezone(timezone.utc)
        second = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
        if first == second:
            return [first]
        if first.astimezone(zone).replace(tzinfo=None) == wall:
            # The wall time happens twice (fall back).
            return [first, second] if self.hour_has_star else [first]
        return [_end_of_gap(wall, zone)]


def _end_of_gap(wall: datetime, zone: tzinfo) -> datetime:
    """Return the first valid instant (in UTC) after the spring-forward gap that holds *wall*."""
    # PEP 495: inside a gap, fold=0 reads the wall time with the offset from
    # before the change and fold=1 with the offset from after it, so the
    # change lies between the two readings.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    high = wall.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    if low > high:
        low, high = high, low
    old_offset = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == old_offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)
