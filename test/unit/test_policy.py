# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from mirror.policy import Conditions, priority_ceiling, refusal
from mirror.task import GeneralSettings

GENERAL = GeneralSettings(loadlimit=4.0, httpconn=1000, maxtasks=3)


def test_ceiling_formula():
    assert priority_ceiling(3.9, 4.0) is None
    assert priority_ceiling(4.0, 4.0) == pytest.approx(10.0)
    assert priority_ceiling(8.0, 4.0) == pytest.approx(5.45)
    assert priority_ceiling(100, 0) is None


@pytest.mark.parametrize("load, allowed", [
    (3.99, range(1, 11)), (4.0, range(1, 11)), (6.0, range(1, 8)), (8.0, range(1, 6)),
    (10.0, range(1, 4)), (11.0, range(1, 3)), (12.0, range(0)),
])
def test_load_throttling(load, allowed):
    for priority in range(1, 11):
        refused = refusal(priority, Conditions(load=load), GENERAL)
        assert (refused is None) == (priority in allowed), (load, priority)
        if refused:
            assert "loadlimit" in refused


def test_http_connection_throttling():
    assert refusal(6, Conditions(http_connections=2000), GENERAL) is not None
    assert refusal(5, Conditions(http_connections=2000), GENERAL) is None
    assert "httpconn" in refusal(10, Conditions(http_connections=2000), GENERAL)


def test_maxtasks_lets_only_priority_two_and_above_through():
    busy = Conditions(running=3)
    assert [refusal(p, busy, GENERAL) is None for p in (1, 2, 3)] == [True, True, False]
    unlimited = GeneralSettings(maxtasks=0, loadlimit=0, httpconn=0)
    assert refusal(10, Conditions(load=99, http_connections=10**6, running=500), unlimited) is None
