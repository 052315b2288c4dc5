# SPDX-License-Identifier: GPL-3.0-or-later
"""The built-in plugins' pure parts: settings, feeds, rsync sizes, which logs are old."""
from __future__ import annotations

import os
from dataclasses import replace
from datetime import date, timezone

import pytest

from mirror.cron import CronSchedule
from mirror.diagnostics import IssueCollector
from mirror.plugins.feeds import (
    human_size,
    jobs_document,
    jobs_status,
    result_message,
    status_document,
)
from mirror.plugins.size import parse_total_size, read_run_tail
from mirror.plugins.systemtask import SystemTask, old_task_logs
from mirror.pluginsettings import PluginSection, Setting, validate
from mirror.values import parse_non_negative_int
from mirror.views import Snapshot, TaskView

VIEW = TaskView(
    name="debian", type="rsync", enabled=True, state="idle", upstreams=("up",), upstream="up",
    localdir="/srv/debian", schedule="0 * * * *", pid=None, stage=None, stages=None,
    timing=CronSchedule.parse("0 * * * *"), received_bytes=None,
    started=None, log_path=None, last_start=None, last_end=None, last_success=None,
    duration=None, result=None, exit_code=None, signal=None, consecutive_failures=0,
    failures_total=0, size=None, next_run=None)


@pytest.mark.parametrize("changes, message, status", [
    ({}, "Never run", "none"),
    ({"result": "success", "exit_code": 0}, "Success", "success"),
    ({"result": "failed", "exit_code": 23}, "Partial transfer due to error", "failed"),
    ({"result": "failed", "exit_code": 99}, "rsync exited with code 99", "failed"),
    ({"result": "failed", "signal": "SIGKILL"}, "Killed by SIGKILL", "failed"),
    ({"result": "failed", "exit_code": None}, "Could not be started; see the task log",
     "failed"),
    ({"result": "timeout", "signal": "SIGTERM"}, "Timed out; the process group was killed",
     "failed"),
    ({"result": "cancelled"}, "Cancelled by an admin", "paused"),
    ({"result": "killed"}, "Ended because mirrord stopped", "paused"),
    # After a crash: the exit status is unknown, and the mirror is not known to be fresh.
    ({"result": "unattended"},
     "Ended while mirrord was not watching it (after a crash); its exit status is unknown",
     "failed"),
    ({"result": "interrupted"},
     "Interrupted: it ended while mirrord was not running; its exit status is unknown",
     "failed"),
    ({"type": "simple", "result": "failed", "exit_code": 3}, "Exited with code 3", "failed"),
    ({"state": "running", "result": "success", "exit_code": 0}, "Success", "syncing"),
    ({"state": "disabled", "enabled": False}, "Never run", "disabled"),
])
def test_result_messages_and_job_states_cover_every_outcome(changes, message, status):
    view = replace(VIEW, **changes)
    assert result_message(view) == message
    assert jobs_status(view) == status


def test_the_documents_show_a_crash_s_results_as_finished_failures_without_exit_code():
    tasks = (replace(VIEW, name="gone", result="interrupted", last_end=1_700_000_000.0,
                     consecutive_failures=2),
             replace(VIEW, name="orphan", result="unattended", last_end=1_700_000_000.0,
                     consecutive_failures=1, failures_total=1))
    snapshot = Snapshot(taken=1_700_000_100.0, zone=timezone.utc, tasks=tasks, queue=(),
                        logdir="/logs", emails=())
    status = status_document(snapshot)
    assert (status["gone"]["status"], status["gone"]["exitcode"]) == (2, None)
    assert status["gone"]["message"].startswith("Interrupted: ")
    assert status["orphan"]["message"].startswith("Ended while mirrord was not watching it")
    assert status["orphan"]["date"] == "2023-11-14 22:13:20"
    assert [job["status"] for job in jobs_document(snapshot)] == ["failed", "failed"]


def test_human_sizes():
    assert [human_size(value) for value in (None, 0, 1023, 1536, 5 * 1024**3)] == [
        "unknown", "0B", "1023B", "1.5K", "5.0G"]


@pytest.mark.parametrize("text, size", [
    ("Total file size: 123456 bytes", 123456),
    ("Total file size: 1,234,567 bytes", 1234567),
    ("Total file size: 1.234.567 bytes", 1234567),
    ("Total file size: 1.23G bytes", 1_230_000_000),
    ("Total file size: 1,50M bytes", 1_500_000),
    ("Total file size: 10 bytes\nTotal file size: 20 bytes", 20),
    ("Number of files: 3\nTotal transferred file size: 5 bytes", None),
    ("", None),
])
def test_total_file_size_in_plain_and_human_readable_forms(text, size):
    assert parse_total_size(text) == size


def test_only_the_latest_runs_part_of_the_log_is_read(tmp_path):
    log = tmp_path / "debian.log.2026-11-25"
    log.write_text("=== mirrord 2026-11-25T01:00:00+00:00 start debian stage 1/1 (run): rsync\n"
                   "Total file size: 100 bytes\n"
                   "=== mirrord 2026-11-25T02:00:00+00:00 start debian stage 1/1 (run): rsync\n"
                   "@ERROR: no stats this time\n")
    assert parse_total_size(read_run_tail(str(log), "debian")) is None


def test_the_log_cleaner_picks_only_old_task_logs(tmp_path):
    names = ["debian.log.2026-11-01", "debian.log.2026-11-14", "debian.log.2026-11-15",
             "ubuntu.log.2026-10-01", "mirrord.log.2026-10-01", "debian.log.2026-02-30",
             "notes.txt", "debian.log.2026-11-01.gz", "gone.log.2026-01-01"]
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / "old.log.2020-01-01").mkdir()
    os.symlink(tmp_path / "notes.txt", tmp_path / "link.log.2020-01-01")
    tasks = {"debian", "ubuntu", "old", "link"}  # not "mirrord", not "gone"
    old = old_task_logs(str(tmp_path), tasks, 10, date(2026, 11, 25))
    assert [os.path.basename(path) for path in old] == [
        "debian.log.2026-11-01", "debian.log.2026-11-14", "ubuntu.log.2026-10-01"]
    cleaner = SystemTask("SystemTask")
    cleaner.settings = {"keep_days": 10}
    in_use = {str(tmp_path / "debian.log.2026-11-14")}
    assert cleaner.clean(str(tmp_path), tasks, date(2026, 11, 25), in_use) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        {*names, "old.log.2020-01-01", "link.log.2020-01-01"}
        - {"debian.log.2026-11-01", "ubuntu.log.2026-10-01"})


def test_settings_are_validated_with_lines_and_defaults_filled_in():
    schema = (Setting("port", parse_non_negative_int, 25), Setting("host", str, "localhost"))
    section = PluginSection("notifier", 3, {"port": "x", "hots": "a", "enabled": "1"},
                            {"port": 4, "hots": 5, "enabled": 6})
    issues = IssueCollector("plugin.ini")
    assert validate(schema, section, issues) is None
    assert [str(issue) for issue in issues.issues] == [
        "plugin.ini:4: [notifier] port: 'x' is not a whole number ≥ 0 (0 means no limit)",
        "plugin.ini:5: [notifier] hots: unknown key, ignored; did you mean host?"]
    fine = PluginSection("notifier", 3, {"port": "587"}, {"port": 4})
    assert validate(schema, fine, IssueCollector("plugin.ini")) == {"port": 587,
                                                                    "host": "localhost"}
    assert validate(schema, None, IssueCollector("plugin.ini")) == {"port": 25,
                                                                    "host": "localhost"}


def test_the_status_files_are_rewritten_at_most_once_a_second(tmp_path):
    """A busy site must cost the loop a snapshot a second, not one per event."""
    from mirror.plugins.taskstatus import MIN_INTERVAL, TaskStatus

    arrivals = [1000.0 + number * 0.01 for number in range(300)]  # 3 s of events
    clock = [arrivals[0]]
    handling = [0]  # the index of the event being handled
    snapshots = []

    class Host:
        state_directory = str(tmp_path)

        def events_pending(self) -> int:  # arrived, and not yet handled
            return sum(1 for when in arrivals[handling[0] + 1:] if when <= clock[0])

        def snapshot(self):
            snapshots.append(clock[0])
            raise TimeoutError  # what a stopping loop answers: nothing is written

        def register_event_handler(self, *_args) -> None:
            pass

    plugin = TaskStatus("TaskStatus")
    plugin.host = Host()
    plugin.settings = {"status_file": "", "jobs_file": ""}
    plugin.enable()
    plugin.clock = lambda: clock[0]
    plugin.sleep = lambda seconds: clock.__setitem__(0, clock[0] + seconds)
    for number, when in enumerate(arrivals):
        handling[0] = number
        clock[0] = max(clock[0], when)
        plugin.on_change()
    assert 3 <= len(snapshots) <= 5  # not 300
    assert all(later - earlier >= MIN_INTERVAL
               for earlier, later in zip(snapshots, snapshots[1:]))
    assert snapshots[-1] >= arrivals[-1]  # the last event is always written


def test_daemons_sharing_a_state_directory_get_their_own_status_files():
    from mirror.plugins.taskstatus import default_status_name

    assert default_status_name("/var/lib/mirror/state.json") == "task_status.json"
    assert default_status_name("/var/lib/mirror/state-conf-1a2b3c4d.json") \
        == "task_status-conf-1a2b3c4d.json"
    assert default_status_name("/srv/history.json") == "task_status-history.json"
