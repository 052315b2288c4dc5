# SPDX-License-Identifier: GPL-3.0-or-later
"""A burst of starts: every task due at one second starts in one scheduling pass, and every
end is recorded. Real children, an in-process daemon and a wall clock set to the due second.
"""
from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from mirror.config import load_config
from mirror.daemon import DaemonPaths, MirrorDaemon
from mirror.history import FAILED, SUCCESS
from mirror.locations import locate_config
from test.integration.conftest import general, wait_for

DUE = 1_800_000_000.0  # a whole minute (epoch seconds)


def burst_daemon(tmp_path: Path, sections: str) -> tuple[MirrorDaemon, dict[str, float]]:
    """An in-process daemon whose tasks, all ``* * * * *``, are due at its wall clock's now."""
    (tmp_path / "mirror.ini").write_text(general().replace("@DIR@", str(tmp_path)) + sections)
    location = locate_config(str(tmp_path))
    clock = {"wall": DUE - 1}
    daemon = MirrorDaemon(location, load_config(location),
                          DaemonPaths(str(tmp_path / "pid"), str(tmp_path / "sock"),
                                      str(tmp_path / "state.json")),
                          ZoneInfo("UTC"), wall=lambda: clock["wall"])
    clock["wall"] = DUE
    return daemon, clock


def finish_runs(daemon: MirrorDaemon) -> None:
    def all_ended() -> bool:
        daemon.handle_sigchld()
        return not daemon.runs
    wait_for(all_ended, what="every run to end")


def test_a_burst_starts_every_task_and_records_every_end(tmp_path):
    sections = "".join(
        f"[ok{index:02d}]\ntype = simple\ncommand = /bin/sh\nargs = -c 'echo out{index}'\n"
        f"time = * * * * *\n" for index in range(40))
    script = tmp_path / "vanishing.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    script.chmod(0o755)
    sections += ("[bad]\ntype = simple\ncommand = /bin/sh\nargs = -c 'exit 3'\n"
                 "time = * * * * *\n"
                 f"[missing]\ntype = simple\ncommand = {script}\ntime = * * * * *\n")
    daemon, _clock = burst_daemon(tmp_path, sections)
    script.unlink()
    daemon._scheduling_pass()
    assert all(run.pid is not None for run in daemon.runs.values())
    finish_runs(daemon)
    results = {name: state.result for name, state in daemon.states.items()}
    assert results == {**{f"ok{index:02d}": SUCCESS for index in range(40)},
                       "bad": FAILED, "missing": FAILED}
    log = (tmp_path / "logs" / "ok07.log.2027-01-15").read_text()
    assert log.index("start ok07") < log.index("out7\n") < log.index("end ok07")
    missing = (tmp_path / "logs" / "missing.log.2027-01-15").read_text()
    assert f"cannot run {script}: No such file or directory" in missing
