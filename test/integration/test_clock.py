# SPDX-License-Identifier: GPL-3.0-or-later
"""Wall-clock changes seen by the daemon."""
from __future__ import annotations

import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mirror.config import load_config
from mirror.daemon import DaemonPaths, MirrorDaemon
from mirror.locations import locate_config
from mirror.taskqueue import RUN, TIMEOUT
from test.integration.conftest import general, wait_for


def test_a_jump_moves_timeouts_and_keeps_scheduled_runs(tmp_path):
    """The daemon compares wall and monotonic time at each wakeup (fake clocks here)."""
    (tmp_path / "mirror.ini").write_text(
        general().replace("@DIR@", str(tmp_path))
        + "[t]\ntype = simple\ncommand = true\ntime = 0 5 * * *\ntimeout = 1h\n")
    location = locate_config(str(tmp_path))
    clock = {"wall": 1_800_000_000.0, "mono": 1000.0}
    daemon = MirrorDaemon(location, load_config(location),
                          DaemonPaths(str(tmp_path / "pid"), str(tmp_path / "sock"),
                                      str(tmp_path / "state.json")),
                          ZoneInfo("UTC"), wall=lambda: clock["wall"],
                          monotonic=lambda: clock["mono"])
    daemon.core.start_now("t", clock["wall"])
    scheduled = daemon.core.queue.get(RUN, "t").due
    timeout = daemon.core.queue.get(TIMEOUT, "t").due
    clock["wall"] += 7200 + 10  # NTP stepped the clock two hours ahead, 10 s passed
    clock["mono"] += 10
    daemon._notice_clock_jump()
    assert daemon.core.queue.get(TIMEOUT, "t").due == timeout + 7200
    assert daemon.core.queue.get(RUN, "t").due == scheduled


@pytest.mark.skipif(os.geteuid() != 0, reason="setting the clock needs root")
def test_setting_the_clock_wakes_the_daemon(mirrord):
    daemon = mirrord(general())
    # Setting the clock to what it already is changes nothing, but the kernel still
    # reports "clock was set" to the daemon's timerfd, wherever in its loop it lands.
    try:
        time.clock_settime(time.CLOCK_REALTIME, time.time())
    except PermissionError:
        pytest.skip("this machine does not let root set the clock (no CAP_SYS_TIME)")
    wait_for(lambda: "the wall clock was set" in daemon.log(), what="the daemon to notice")
    assert daemon.process.poll() is None and Path(daemon.socket).exists()
