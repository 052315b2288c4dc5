# SPDX-License-Identifier: GPL-3.0-or-later
"""The state file: one daemon per file, per-config defaults, writes that cost O(1) per event,
and a kill -9 that never leaves half a file."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from mirror.config import load_config
from mirror.daemon import STATE_FLUSH_SECONDS, DaemonPaths, MirrorDaemon
from mirror.history import TaskHistory
from mirror.localzone import local_zone
from mirror.locations import locate_config
from test.integration.conftest import general

QUICK = "[quick]\ntype = simple\ncommand = /bin/true\ntime = 0 0 1 1 *\n"


def test_a_second_daemon_on_the_same_state_file_is_refused(mirrord, tmp_path):
    shared = tmp_path / "shared-state.json"
    config = general(statefile=str(shared)) + QUICK
    first = mirrord(config)
    first.cli("--run", "quick", "--wait")
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    (second_dir / "mirror.ini").write_text(config.replace("@DIR@", str(second_dir)))
    result = subprocess.run([sys.executable, "-m", "mirror", "-c", str(second_dir), "-D", "-l",
                             str(second_dir / "log")], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert (f"mirrord: the state file {shared} is in use by another mirrord (pid {first.pid}); "
            "give each daemon its own statefile in [general]") in result.stderr
    assert json.loads(shared.read_text())["tasks"]["quick"]["result"] == "success"


def test_without_statefile_each_config_keeps_its_own_history(mirrord, tmp_path):
    states = tmp_path / "states"  # as systemd's StateDirectory= would give both
    env = {"STATE_DIRECTORY": str(states)}
    config = general().replace("statefile = @DIR@/state.json\n", "")
    first = mirrord(config + QUICK, env=env)
    second = mirrord(config + QUICK.replace("[quick]", "[other]"), env=env)
    first.cli("--run", "quick", "--wait")
    second.cli("--run", "other", "--wait")
    first.stop()
    second.stop()
    files = sorted(states.glob("state-*.json"))
    assert len(files) == 2
    histories = [set(json.loads(path.read_text())["tasks"]) for path in files]
    assert sorted(histories, key=sorted) == [{"other"}, {"quick"}]


def test_state_writes_are_coalesced(tmp_path):
    """Finding: every run end rewrote the whole file (40 ms at 1,000 tasks) on the loop."""
    (tmp_path / "mirror.ini").write_text(general().replace("@DIR@", str(tmp_path)) + QUICK)
    config = load_config(locate_config(str(tmp_path)))
    clock = [100.0]
    daemon = MirrorDaemon(config.location, config, DaemonPaths(
        str(tmp_path / "pid"), str(tmp_path / "sock"), str(tmp_path / "state.json")),
        local_zone(), monotonic=lambda: clock[0])
    writes = []
    daemon.store.save = lambda states, runs=None: writes.append(dict(states))  # count, don't write
    for number in range(1000):  # a thousand run ends within one interval
        daemon.states[f"task{number}"] = TaskHistory(result="success")
        daemon.save_state()
        daemon._flush_state_when_due()
        clock[0] += STATE_FLUSH_SECONDS / 2000
    assert len(writes) == 1  # the first at once: an idle daemon persists a result at once
    clock[0] += STATE_FLUSH_SECONDS
    daemon._flush_state_when_due()
    assert len(writes) == 2 and len(writes[-1]) == 1000  # the rest in one write
    daemon._flush_state_when_due()
    assert len(writes) == 2  # nothing unsaved, nothing written


def test_kill_9_leaves_a_whole_state_file_with_every_result_but_the_last_interval(mirrord):
    tasks = "".join(QUICK.replace("quick", f"quick{number}") for number in range(20))
    daemon = mirrord(general() + tasks)
    for number in range(20):
        daemon.cli("--run", f"quick{number}", "--wait")
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.process.wait(10)
    document = json.loads((daemon.directory / "state.json").read_text())
    results = {name: task["result"] for name, task in document["tasks"].items()}
    # Each --wait reply comes after its result was handed to the writer; at most the runs
    # of the last flush interval (0.5 s) may be missing.
    assert sum(1 for result in results.values() if result == "success") >= 15
    assert not list(daemon.directory.glob(".state.json.*.tmp"))
