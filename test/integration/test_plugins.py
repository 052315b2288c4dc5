# SPDX-License-Identifier: GPL-3.0-or-later
"""Plugins in a real daemon: a third-party distribution, badly behaved plugins, broken ones."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from test.integration.conftest import general, load_state, wait_for
from test.integration.test_daemon import YEARLY, rsync_task

SAMPLE = Path(__file__).resolve().parent.parent / "sample_plugin"
CLASSIC = ["MirrorStartEvent", "TaskEnqueueEvent", "PreTaskStartEvent", "TaskStartEvent",
           "TaskStopEvent", "RunSystemTaskEvent"]


@pytest.fixture(scope="session")
def sample_plugin(tmp_path_factory) -> str:
    """test/sample_plugin, pip-installed as its own distribution into a directory of its own."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("source") / "sample_plugin"
    shutil.copytree(SAMPLE, source)  # a build writes beside the sources
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)],
                   check=True, capture_output=True, timeout=300)
    assert list(target.glob("mirror_sample_plugin-0.1.dist-info"))
    return str(target)


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def events_named(path: Path, name: str) -> list[dict]:
    return [entry for entry in records(path) if entry["event"] == name]


@pytest.mark.slow
def test_third_party_plugin_gets_classic_events_while_others_raise_and_block(
        mirrord, rsync_daemon, sample_plugin):
    plugins = ("[slatefish]\nenabled = 0\n[starter]\nenabled = 0\n"
               "[recorder]\nrecord_file = @DIR@/events.jsonl\n"
               "[troublemaker]\nsleep = 30\n"
               "[systemtask]\nschedule = * * * * *\n")
    daemon = mirrord(general() + rsync_task("manual", rsync_daemon.url(), "@DIR@/manual")
                     + rsync_task("ontime", rsync_daemon.url(), "@DIR@/ontime",
                                  time="* * * * *"),
                     plugins=plugins, env={"PYTHONPATH": sample_plugin})
    record = daemon.directory / "events.jsonl"
    scheduled = datetime.fromisoformat(daemon.status()["ontime"]["next_run"]).timestamp()
    if scheduled - time.time() < 8:  # too close to the minute to do the first part before it
        wait_for(lambda: daemon.status()["ontime"]["last_result"], timeout=30)
        scheduled = datetime.fromisoformat(daemon.status()["ontime"]["next_run"]).timestamp()

    # A manual run: Troublemaker's TaskStartEvent handler now sleeps 30 s, and its
    # TaskEnqueueEvent handler raises. Recorder, on its own thread, still hears everything.
    reply = daemon.ask({"command": "run", "name": "manual", "wait": True}, timeout=30)
    assert reply["ok"], reply
    ended = time.time()
    stop = wait_for(lambda: [entry for entry in events_named(record, "TaskStopEvent")
                             if entry["args"][0] == "manual"], timeout=5,
                    what="Recorder to hear TaskStopEvent while Troublemaker sleeps")[0]
    assert stop["at"] - ended < 3

    # The scheduler is not held up either: ontime starts on its minute.
    def ontime_ran() -> dict | None:
        if not (daemon.directory / "state.json").exists():  # its first save is coalesced
            return None
        state = load_state(daemon.directory).get("ontime", {})
        ended = state.get("last_end") or 0
        return state if ended > (state.get("last_start") or 0) > scheduled - 30 else None

    started = wait_for(ontime_ran, timeout=scheduled - time.time() + 30, interval=0.5,
                       what="ontime's scheduled run")
    assert 0 <= started["last_start"] - scheduled < 1.5
    wait_for(lambda: [entry for entry in events_named(record, "RunSystemTaskEvent")
                      if entry["args"][0]["time"] == scheduled], timeout=5)

    entries = records(record)
    assert entries[0]["event"] == "MirrorStartEvent" and entries[0]["args"] == []
    assert {entry["thread"] for entry in entries} == {"plugin:Recorder"}
    by_event = {name: [entry["args"] for entry in entries if entry["event"] == name]
                for name in CLASSIC}
    assert ["manual"] in by_event["TaskEnqueueEvent"] and ["ontime"] in by_event[
        "TaskEnqueueEvent"]
    assert ["manual"] in by_event["PreTaskStartEvent"] and ["ontime"] in by_event[
        "PreTaskStartEvent"]
    (_name, pid), = [args for args in by_event["TaskStartEvent"] if args[0] == "manual"]
    assert isinstance(pid, int) and pid > 1
    assert ["manual", pid, 0] in by_event["TaskStopEvent"]
    assert [{"name": "logcleaner", "time": scheduled}] in by_event["RunSystemTaskEvent"]
    log = daemon.log()
    assert "plugin Troublemaker: handler Troublemaker.explode for TaskEnqueueEvent failed" in log
    assert "RuntimeError: troublemaker exploded on manual" in log

    # Stopping waits a bounded time for the sleeper, and Recorder is disabled on its thread.
    began = time.monotonic()
    assert daemon.stop(timeout=40) == 0
    assert time.monotonic() - began < 20
    assert "plugin Troublemaker did not finish its last" in daemon.log()
    assert records(record)[-1]["event"] == "disabled"


def test_broken_and_switched_off_plugins_are_logged_and_skipped(mirrord, sample_plugin,
                                                                 tmp_path):
    # A distribution whose entry point names a module that does not exist.
    broken = tmp_path / "broken"
    info = broken / "broken_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[mirror.plugin.mirrorplugin]\nBroken = broken_plugin_missing:Plugin\n")
    plugins = ("[slatefish]\nenabled = 0\n[starter]\nenabled = 0\n"
               "[recorder]\nenabled = 0\nrecord_file = @DIR@/events.jsonl\n"
               "[troublemaker]\nsleep = not-a-number\n")
    daemon = mirrord(general() + rsync_task("idle", "rsync://127.0.0.1:1/x/", "@DIR@/idle",
                                            time=YEARLY),
                     plugins=plugins, env={"PYTHONPATH": f"{sample_plugin}:{broken}"})
    wait_for(lambda: "plugin TaskStatus enabled" in daemon.log(), what="plugins loaded")
    log = daemon.log()
    assert ("plugin Broken (broken_plugin_missing:Plugin) cannot be imported; mirrord goes on "
            "without it") in log
    assert "plugin Troublemaker failed to start; mirrord goes on without it" in log
    assert "plugin Recorder: switched off in plugin.ini ([recorder] enabled = 0)" in log
    assert not (daemon.directory / "events.jsonl").exists()
    assert daemon.answers()
    assert "idle" in daemon.status()


def test_a_plugin_asks_the_loop_for_a_run_and_a_snapshot(mirrord, rsync_daemon, sample_plugin):
    plugins = ("[slatefish]\nenabled = 0\n[recorder]\nenabled = 0\n[troublemaker]\nenabled = 0\n"
               "[starter]\ntask = early\nrecord_file = @DIR@/starter.jsonl\n")
    daemon = mirrord(general() + rsync_task("early", rsync_daemon.url(), "@DIR@/early"),
                     plugins=plugins, env={"PYTHONPATH": sample_plugin})
    record = daemon.directory / "starter.jsonl"
    (entry,) = wait_for(lambda: records(record), what="Starter's record")
    assert entry["reply"]["ok"] and entry["reply"]["state"] == "running"
    assert (entry["task"], entry["result"], entry["kind"]) == ("early", "success", "manual")
    assert entry["snapshot"]["state"] == "idle" and entry["snapshot"]["result"] == "success"
    # The state file follows within STATE_FLUSH_SECONDS (writes are coalesced).
    wait_for(lambda: entry["snapshot"]["last_success"] == load_state(daemon.directory)["early"]
             .get("last_success"), what="the state file to record the success")
    assert (daemon.directory / "early" / "docs" / "README").exists()


def test_plugin_ini_mistakes_are_reported_with_file_line_section_and_key(mirrord, tmp_path):
    directory = tmp_path / "conf"
    directory.mkdir()
    (directory / "mirror.ini").write_text(general(str(directory)) + rsync_task(
        "idle", "rsync://127.0.0.1:1/x/", str(directory / "idle")))
    (directory / "plugin.ini").write_text(
        "[SystemTask]\nkeep_days = 0\nschedule = 61 * * * *\n[TaskStatus]\nstatus_fil = /x\n"
        "jobs_file = relative/jobs.json\n[size]\nenabled = maybe\n[statuspage]\nport = 1\n")
    result = subprocess.run([sys.executable, "-m", "mirror", "-c", str(directory), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout
    ini = directory / "plugin.ini"
    for expected in (
            f"{ini}:2: [systemtask] keep_days: '0' is not a whole number of days ≥ 1",
            f"{ini}:3: [systemtask] schedule: '61 * * * *' is not a cron expression",
            f"{ini}:5: [taskstatus] status_fil: unknown key, ignored; did you mean status_file?",
            f"{ini}:6: [taskstatus] jobs_file: 'relative/jobs.json' is not an absolute path",
            f"{ini}:8: [size] enabled: 'maybe' is not a yes/no value",
            f"{ini}:9: [statuspage] no installed plugin has this name; the section is ignored "
            "(installed: notifier, size, slatefish, systemtask, taskstatus)"):
        assert expected in result.stdout, result.stdout
