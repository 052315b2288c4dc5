# SPDX-License-Identifier: GPL-3.0-or-later
"""``mirrord -s restart``: a new image in place, with the same pid, while syncs run on."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from mirror.config import load_config
from mirror.control import DaemonUnavailable, request
from mirror.daemon import DaemonPaths, MirrorDaemon
from mirror.history import HistoryStore
from mirror.locations import locate_config
from mirror.procident import RUN_ID_VARIABLE, ProcessIdentity
from mirror.runs import RunKind, RunRecord
from mirror.task import Stage
from test.integration.conftest import NO_WEB_PAGE, Mirrord, alive, general, load_state, wait_for
from test.integration.test_daemon import group_members, rsync_task

ROOT = Path(__file__).resolve().parents[2]


def two_stage(rsync_daemon, **extra: str) -> str:
    """A two-stage rsync whose first stage (2 MiB at 250 KiB/s) lasts about 8 s."""
    return rsync_task("two", rsync_daemon.url("slow"), "@DIR@/two", rsyncdir="two/",
                      twostage="1", firststage="pool", args="-a --bwlimit=250", **extra)


def start_sync(daemon) -> int:
    started = daemon.ask({"command": "run", "name": "two"})
    assert started["ok"], started
    pid = started["pid"]
    wait_for(lambda: len(group_members(pid)) >= 2, what="rsync to fork its receiver")
    return pid


class QueueLoop(threading.Thread):
    """A ``-t`` client asking again and again until stopped; it keeps what went wrong."""

    def __init__(self, socket: Path) -> None:
        super().__init__(daemon=True)
        self.socket = str(socket)
        self.answers = 0
        self.failures: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                reply = request(self.socket, {"command": "queue"}, timeout=30)
            except (DaemonUnavailable, OSError) as problem:
                self.failures.append(repr(problem))
            else:
                self.answers += 1 if reply.get("ok") else 0
                if not reply.get("ok"):
                    self.failures.append(repr(reply))

    def stop(self) -> None:
        self.done.set()
        self.join(60)


def test_restart_during_a_two_stage_sync_keeps_the_pid_the_rsync_and_the_result(
        mirrord, rsync_daemon):
    daemon = mirrord(general() + two_stage(rsync_daemon))
    before = daemon.ask({"command": "info"})
    rsync_pid = start_sync(daemon)
    looping = QueueLoop(daemon.socket)
    looping.start()
    restarted = daemon.cli("-s", "restart")
    assert restarted.returncode == 0, restarted.stderr
    assert "restarted in place" in restarted.stdout and "1 runs carry on" in restarted.stdout
    after = daemon.ask({"command": "info"})
    assert after["pid"] == before["pid"] == daemon.pid and daemon.process.poll() is None
    assert after["image"] != before["image"]
    # The same rsync, still stage 1, now the new image's.
    assert alive(rsync_pid)
    task = daemon.status()["two"]
    assert (task["state"], task["pid"], task["stage"]) == ("running", rsync_pid, 1)
    finished = daemon.wait_result("two", timeout=60)
    looping.stop()
    assert finished["last_result"] == "success"
    assert (daemon.directory / "two" / "top.txt").read_text() == "the rest of the tree\n"
    wait_for(lambda: load_state(daemon.directory)["two"]["result"] == "success",
             what="the state file")
    assert load_state(daemon.directory)["two"]["stage"] == 2
    log = next((daemon.directory / "logs").glob("two.log.*")).read_text()
    for line in ("start two stage 1/2", "end two stage 1/2: exit 0",
                 "start two stage 2/2", "end two stage 2/2: exit 0"):
        assert log.count(line) == 1, (line, log)
    assert log.count("=== mirrord") == 4
    assert looping.failures == [] and looping.answers > 0
    text = daemon.log()
    assert "restarting in place" in text and "mirrord executed again" in text
    assert "took over its run in progress from the last mirrord (stage 1/2" in text
    assert not [child for child in daemon.children() if child[1] == "Z"]


def test_restart_with_a_broken_config_is_refused_and_the_sync_runs_on(mirrord, rsync_daemon):
    daemon = mirrord(general() + two_stage(rsync_daemon))
    image = daemon.ask({"command": "info"})["image"]
    rsync_pid = start_sync(daemon)
    daemon.write_config(daemon.config_path.read_text() + "[broken]\ntime = every day\n")
    refused = daemon.cli("-s", "restart")
    assert refused.returncode == 1
    assert "restart refused: the config has" in refused.stderr
    assert "[broken]" in refused.stderr and "time" in refused.stderr
    assert daemon.ask({"command": "info"})["image"] == image
    assert alive(rsync_pid) and daemon.status()["two"]["state"] == "running"
    assert "restart refused: the config has" in daemon.log()


def test_restart_into_code_that_fails_to_import_leaves_the_old_image_running(
        rsync_daemon, tmp_path):
    tree = tmp_path / "installed"
    shutil.copytree(ROOT / "mirror", tree / "mirror",
                    ignore=shutil.ignore_patterns("__pycache__"))
    directory = tmp_path / "daemon"
    directory.mkdir()
    (directory / "plugin.ini").write_text(NO_WEB_PAGE)
    daemon = Mirrord(directory, (general() + two_stage(rsync_daemon)).replace("@DIR@",
                                                                               str(directory)))
    daemon.start(cwd=tree)  # python -m mirror imports the copy
    try:
        image = daemon.ask({"command": "info"})["image"]
        rsync_pid = start_sync(daemon)
        # "pip install -U" put a version in place that cannot be imported.
        with open(tree / "mirror" / "daemon.py", "a") as module:
            module.write("\nraise ImportError('broken by the test')\n")
        refused = daemon.cli("-s", "restart")
        assert refused.returncode == 1
        assert "the new code failed to start" in refused.stderr
        assert "broken by the test" in refused.stderr
        info = daemon.ask({"command": "info"})
        assert info["image"] == image and "broken by the test" in info["restart_error"]
        assert alive(rsync_pid) and daemon.status()["two"]["state"] == "running"
        assert "restart refused: the new code failed to start" in daemon.log()
    finally:
        daemon.stop()


def test_runs_of_a_state_file_changed_since_the_exec_are_not_trusted(tmp_path):
    """Between the old image's last write and the new image's read, a state file in a
    directory a less privileged user can write could be swapped for one whose records give
    a child of mirrord other stages to run. The handover carries the file's SHA-256."""
    child = subprocess.Popen(["sleep", "30"], start_new_session=True,
                             env={**os.environ, RUN_ID_VARIABLE: "r1"})
    try:
        identity = ProcessIdentity.of(child.pid, "r1")
        assert identity is not None
        record = RunRecord(name="two", kind=RunKind.RUN,
                           plan=(Stage(("/bin/true",)), Stage(("/bin/sh", "-c", "exit 0"))),
                           stage=1, upstream=None, upstream_index=0, started=time.time(),
                           stage_started=time.time(), log_path=str(tmp_path / "two.log"),
                           first_pid=child.pid, identity=identity, ending=None, localdir=None,
                           resolved=None)
        (tmp_path / "mirror.ini").write_text(
            general().replace("@DIR@", str(tmp_path))
            + "[two]\ntype = simple\ncommand = /bin/true\ntime = 0 0 1 1 *\n")
        (tmp_path / "plugin.ini").write_text(NO_WEB_PAGE)
        written = HistoryStore(str(tmp_path / "state.json")).save({}, {"two": record.to_dict()})
        location = locate_config(str(tmp_path))
        paths = DaemonPaths(str(tmp_path / "pid"), str(tmp_path / "sock"),
                            str(tmp_path / "state.json"))

        trusted = MirrorDaemon(location, load_config(location), paths, ZoneInfo("UTC"))
        trusted.expected_state_digest = written
        trusted.handed_children = (child.pid,)
        trusted._take_over_runs()
        assert trusted.core.run_of("two").plan[1].argv == ("/bin/sh", "-c", "exit 0")
        assert trusted.pids == {child.pid: "two"} and child.poll() is None

        swapped = MirrorDaemon(location, load_config(location), paths, ZoneInfo("UTC"))
        swapped.expected_state_digest = "0" * 64
        swapped.handed_children = (child.pid,)  # the handover, not the file, names them
        swapped._take_over_runs()
        assert "two" not in swapped.core.running and swapped.pids == {}
        assert child.wait(10) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()
