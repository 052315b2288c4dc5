# SPDX-License-Identifier: GPL-3.0-or-later
"""Admission: may a task of a given priority start under the current system conditions?

Kept from mirror 0.8.4: while the load (or the number of HTTP connections) is
at or above its limit, only priorities ≤ −4.55·value/limit + 14.55 may start;
while maxtasks tasks run, only priority ≤ 2 may start.
"""
from __future__ import annotations

from dataclasses import dataclass

from mirror.i18n import _
from mirror.task import GeneralSettings

SLOPE = -4.55
INTERCEPT = 14.55
BUSY_PRIORITY_CEILING = 2
DELAY_SECONDS = 30 * 60


@dataclass(frozen=True)
class Conditions:
    """What the system looks like during one scheduling pass."""

    load: float = 0.0
    http_connections: int = 0
    running: int = 0


def priority_ceiling(value: float, limit: float) -> float | None:
    """The highest priority number allowed to start, or None when *value* is under *limit*.

    A *limit* of 0 means no limit.
    """
    if limit <= 0 or value < limit:
        return None
    return SLOPE * value / limit + INTERCEPT


def refusal(priority: int, conditions: Conditions, general: GeneralSettings) -> str | None:
    """Why a task of *priority* may not start now, or None if it may."""
    ceiling = priority_ceiling(conditions.load, general.loadlimit)
    if ceiling is not None and priority > ceiling:
        return _("load {load:.2f} ≥ loadlimit {limit:g}: only priority ≤ {ceiling:.2f} may start"
                 ).format(load=conditions.load, limit=general.loadlimit, ceiling=ceiling)
    ceiling = priority_ceiling(conditions.http_connections, general.httpconn)
    if ceiling is not None and priority > ceiling:
        return _("{count} HTTP connections ≥ httpconn {limit}: only priority ≤ {ceiling:.2f} "
                 "may start").format(count=conditions.http_connections, limit=general.httpconn,
                                     ceiling=ceiling)
    if 0 < general.maxtasks <= conditions.running and priority > BUSY_PRIORITY_CEILING:
        return _("{count} tasks running ≥ maxtasks {limit}: only priority ≤ {ceiling} may start"
                 ).format(count=conditions.running, limit=general.maxtasks,
                          ceiling=BUSY_PRIORITY_CEILING)
    return None
