# SPDX-License-Identifier: GPL-3.0-or-later
"""TaskStatus and Size in a real daemon: the status file, the jobs file and mirror sizes."""
from __future__ import annotations

import json
import os
import signal
import threading
from datetime import datetime, timezone

from mirror.plugins.feeds import NEVER_TEXT, NEVER_TS, human_size
from test.integration.conftest import general, load_state, wait_for
from test.integration.test_daemon import rsync_task, simple_task

PLUGINS = ("[slatefish]\nenabled = 0\n[taskstatus]\nstatus_file = @DIR@/www/status.json\n"
           "jobs_file = @DIR@/www/jobs.json\n")


class Reader(threading.Thread):
    """Reads a JSON file as fast as it can; counts reads, distinct versions and bad parses."""

    def __init__(self, path) -> None:
        super().__init__(daemon=True)
        self.path, self.reads, self.bad, self.versions = path, 0, [], set()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                text = self.path.read_text()
            except FileNotFoundError:
                continue
            try:
                json.loads(text)
            except ValueError:
                self.bad.append(text)
            self.reads += 1
            self.versions.add(text)


def test_status_and_jobs_files_after_success_failure_timeout_and_signal(mirrord, rsync_daemon):
    config = (general()
              + rsync_task("good", rsync_daemon.url(), "@DIR@/good")
              + rsync_task("partial", rsync_daemon.url(), "@DIR@/partial",
                           rsyncdir="no-such-dir")
              + rsync_task("slow", rsync_daemon.url("slow"), "@DIR@/slow", timeout="2s",
                           args="-a --bwlimit=20")
              + simple_task("victim", "echo started; sleep 300")
              + simple_task("off", "true", enabled="0")
              + simple_task("never", "true"))
    daemon = mirrord(config, plugins=PLUGINS)
    status_path = daemon.directory / "www" / "status.json"
    jobs_path = daemon.directory / "www" / "jobs.json"
    readers = [Reader(status_path), Reader(jobs_path)]
    for reader in readers:
        reader.start()

    for name in ("good", "partial"):
        daemon.ask({"command": "run", "name": name, "wait": True}, timeout=30)
    daemon.ask({"command": "run", "name": "slow"})

    def jobs() -> dict:
        return {job["name"]: job for job in json.loads(jobs_path.read_text())}

    def status() -> dict:
        return json.loads(status_path.read_text())

    wait_for(lambda: jobs()["slow"]["status"] == "syncing", what="slow shown as syncing")
    assert status()["slow"]["status"] == 1
    daemon.wait_result("slow", timeout=15)
    started = daemon.ask({"command": "run", "name": "victim"})
    os.kill(started["pid"], signal.SIGKILL)
    daemon.wait_result("victim", timeout=15)
    wait_for(lambda: jobs()["victim"]["status"] == "failed" and jobs()["good"]["size"] !=
             "unknown", what="the files to catch up")
    for reader in readers:
        reader.stopping.set()
        reader.join()

    state = load_state(daemon.directory)
    current = status()
    assert current["good"] == {
        "status": 2, "exitcode": 0, "message": "Success",
        "upstream": rsync_daemon.url(), "schedule": "2027-01-01 00:00:00",
        "date": datetime.fromtimestamp(state["good"]["last_end"], timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S")}
    assert (current["partial"]["status"], current["partial"]["exitcode"],
            current["partial"]["message"]) == (2, 23, "Partial transfer due to error")
    assert current["slow"]["message"] == "Timed out; the process group was killed"
    assert (current["victim"]["exitcode"], current["victim"]["message"]) == (-9,
                                                                            "Killed by SIGKILL")
    assert current["never"] == {"status": 0, "schedule": "2027-01-01 00:00:00", "upstream": ""}
    assert current["off"]["schedule"] == "Unknown"

    feed = jobs()
    assert set(feed) == {"good", "partial", "slow", "victim", "off", "never"}
    assert {name: job["status"] for name, job in feed.items()} == {
        "good": "success", "partial": "failed", "slow": "failed", "victim": "failed",
        "off": "disabled", "never": "none"}
    good = feed["good"]
    assert good["is_master"] is True and good["upstream"] == rsync_daemon.url()
    assert good["last_update_ts"] == int(state["good"]["last_success"])
    assert good["last_update"] == datetime.fromtimestamp(
        good["last_update_ts"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000")
    assert good["last_started_ts"] == int(state["good"]["last_start"])
    assert good["last_ended_ts"] == int(state["good"]["last_end"])
    assert good["next_schedule"] == "2027-01-01 00:00:00 +0000"
    assert good["next_schedule_ts"] == int(datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp())
    tree_bytes = sum(path.lstat().st_size for path in rsync_daemon.tree.rglob("*")
                     if not path.is_dir())
    assert state["good"]["size"] == tree_bytes
    assert good["size"] == human_size(tree_bytes)
    for name in ("partial", "slow", "victim"):
        assert (feed[name]["last_update"], feed[name]["last_update_ts"]) == (NEVER_TEXT,
                                                                             NEVER_TS)
        assert feed[name]["size"] == "unknown"
    assert feed["never"]["last_started_ts"] == NEVER_TS

    for reader in readers:
        assert reader.bad == [] and reader.reads > 50 and len(reader.versions) > 3


def test_files_tell_the_truth_after_a_stop_ends_a_running_sync(mirrord):
    daemon = mirrord(general() + "[long]\ntype = simple\ncommand = sleep\nargs = 300\n"
                     "time = 0 0 1 1 *\n", plugins=PLUGINS)
    daemon.ask({"command": "run", "name": "long"})
    jobs_path = daemon.directory / "www" / "jobs.json"
    wait_for(lambda: jobs_path.exists() and json.loads(jobs_path.read_text())[0]["status"]
             == "syncing", what="long shown as syncing")
    assert daemon.stop() == 0
    assert load_state(daemon.directory)["long"]["result"] == "killed"
    assert json.loads(jobs_path.read_text())[0]["status"] == "paused"
    status = json.loads((daemon.directory / "www" / "status.json").read_text())["long"]
    assert (status["status"], status["message"]) == (2, "Ended because mirrord stopped")
