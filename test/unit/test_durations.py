# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from mirror.durations import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("1200", 1200), ("12h", 43200), ("12h4m", 43440), ("90m", 5400), ("30s", 30),
    ("1d", 86400), ("1d12h", 129600), ("0", 0), (" 2h ", 7200), ("1H30M", 5400),
    ("1d2h3m4s", 93784),
])
def test_accepted_forms(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["12x", "", "h", "1h1d", "12 h", "-5", "1.5h", "٣", "12h4"])
def test_anything_else_is_an_error_not_zero(text):
    with pytest.raises(ValueError, match=r"is not a duration \(.*12h4m"):
        parse_duration(text)


@pytest.mark.parametrize("seconds, text", [(0, "0"), (30, "30s"), (5400, "1h30m"),
                                           (129600, "1d12h")])
def test_format_round_trips(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
