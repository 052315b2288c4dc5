# SPDX-License-Identifier: GPL-3.0-or-later
"""mirrord as a real process: real rsync daemon, real children, real signals."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test.integration.background import Scenario
from test.integration.conftest import (
    NO_WEB_PAGE,
    Mirrord,
    alive,
    build_upstream_tree,
    general,
    load_state,
    saved_task_state,
    start_rsync_daemon,
    wait_for,
)

YEARLY = "0 0 1 1 *"  # far away: these tasks run only when asked to


def snapshot(root: Path) -> tuple[dict, set]:
    """Every entry under *root* (content, link target) and the groups of hard-linked files."""
    entries, inodes = {}, {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory) / name
            relative = str(path.relative_to(root))
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                entries[relative] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                entries[relative] = ("dir",)
            else:
                entries[relative] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(),
                                     int(info.st_mtime))
                inodes.setdefault(info.st_ino, set()).add(relative)
    return entries, {frozenset(group) for group in inodes.values() if len(group) > 1}


def rsync_task(name: str, upstream: str, localdir: str, **extra: str) -> str:
    lines = {"upstream[]": upstream, "rsyncdir": extra.pop("rsyncdir", "/"),
             "localdir": localdir, "time": extra.pop("time", YEARLY)}
    lines.update(extra)
    return f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in lines.items())


def simple_task(name: str, script: str, **extra: str) -> str:
    lines = {"type": "simple", "command": "sh", "args": f"-c '{script}'",
             "time": extra.pop("time", YEARLY)}
    lines.update(extra)
    return f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in lines.items())


def test_run_wait_gives_a_byte_identical_mirror_with_hard_links(mirrord, rsync_daemon):
    daemon = mirrord(general() + rsync_task("tree", rsync_daemon.url(), "@DIR@/mirror"))
    result = daemon.cli("--run", "tree", "--wait")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tree: success"
    mirrored, mirrored_links = snapshot(daemon.directory / "mirror")
    expected, expected_links = snapshot(rsync_daemon.tree)
    assert mirrored == expected
    assert mirrored_links == expected_links and len(expected_links) == 2
    log_files = list((daemon.directory / "logs").glob("tree.log.*"))
    text = log_files[0].read_text()
    assert text.startswith("=== mirrord ") and "start tree stage 1/1 (manual, upstream " in text
    assert "end tree stage 1/1: exit 0 after" in text
    state = saved_task_state(daemon.directory, "tree",
                             lambda entry: entry.get("last_end") is not None)
    assert (state["result"], state["exit_code"], state["upstream"]) == (
        "success", 0, rsync_daemon.url())


def test_two_stage_removes_nothing_before_stage_two(mirrord, rsync_daemon, tmp_path):
    spy = tmp_path / "rsync-spy"
    calls = tmp_path / "calls"
    mirror = tmp_path / "mirror-debian"
    # The spy records what the mirror holds when each stage starts, then becomes rsync.
    spy.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n"
                   f"find {mirror} -name '*stale*' | sort >> {calls}\necho -- >> {calls}\n"
                   f"exec rsync \"$@\"\n")
    spy.chmod(0o755)
    old_pool = mirror / "pool" / "main" / "o" / "old"
    old_pool.mkdir(parents=True)
    (old_pool / "stale_0.1_amd64.deb").write_text("old package")
    (mirror / "dists").mkdir()
    (mirror / "dists" / "stale-Release").write_text("old index")
    daemon = mirrord(general() + rsync_task("debian", rsync_daemon.url(), str(mirror),
                                            rsyncdir="debian/", twostage="1", firststage="pool",
                                            command=str(spy)))
    assert daemon.cli("--run", "debian", "--wait").returncode == 0
    stage1, stage2, _ = calls.read_text().split("--\n")
    assert "--delete" not in stage1.splitlines()[0]
    assert stage1.splitlines()[0].endswith("/mirror/debian/pool/ " + str(mirror / "pool"))
    assert "--delete-after" in stage2 and "--delay-updates" in stage2
    # When stage 2 started, stage 1 had removed nothing.
    assert stage2.splitlines()[1:] == [str(mirror / "dists" / "stale-Release"),
                                       str(old_pool / "stale_0.1_amd64.deb")]
    assert not (old_pool / "stale_0.1_amd64.deb").exists()
    assert snapshot(mirror) == snapshot(rsync_daemon.tree / "debian")


def test_timeout_kills_rsync_and_its_whole_group(mirrord, rsync_daemon):
    daemon = mirrord(general() + rsync_task("slow", rsync_daemon.url("slow"), "@DIR@/slow",
                                            timeout="2s", args="-a --bwlimit=20"))
    started = daemon.ask({"command": "run", "name": "slow"})
    pgid = started["pid"]
    wait_for(lambda: len(group_members(pgid)) >= 2, what="rsync to fork its receiver")
    members = group_members(pgid)
    task = daemon.wait_result("slow", timeout=15)
    assert task["last_result"] == "timeout"
    # The result is in once rsync itself exits; the rest of its group may take a moment
    # more, and is killed after killgrace (1 s here) at the latest.
    wait_for(lambda: not any(alive(pid) for pid in members), timeout=5,
             what="every process of the group to end")
    assert "slow: timeout; sending SIGTERM to process group" in daemon.log()
    assert not [child for child in daemon.children() if child[1] == "Z"]


def test_timeout_escalates_to_sigkill(mirrord, tmp_path):
    pids = tmp_path / "pids"
    script = f"trap \"\" TERM; sleep 300 & echo $$ $! > {pids}; wait"
    daemon = mirrord(general(killgrace="1s") + simple_task("stubborn", script, timeout="1s"))
    daemon.ask({"command": "run", "name": "stubborn"})
    wait_for(lambda: pids.exists() and pids.read_text().strip(), what="the script to start")
    shell, sleeper = (int(pid) for pid in pids.read_text().split())
    task = daemon.wait_result("stubborn", timeout=15)
    assert task["last_result"] == "timeout" and task["signal"] == "SIGKILL"
    assert not alive(shell) and not alive(sleeper)
    assert "outlived the grace period; sent SIGKILL" in daemon.log()


def test_cancel_ends_a_running_sync(mirrord, tmp_path):
    daemon = mirrord(general() + simple_task("long", "sleep 300"))
    assert daemon.cli("--cancel", "long").returncode == 1  # not running yet
    daemon.ask({"command": "run", "name": "long"})
    result = daemon.cli("--cancel", "long")
    assert result.returncode == 0 and "long: cancelling" in result.stdout
    task = daemon.wait_result("long")
    assert (task["last_result"], task["signal"]) == ("cancelled", "SIGTERM")


def test_a_failed_run_retries_on_the_next_upstream(mirrord, rsync_daemon):
    bad = f"rsync://127.0.0.1:{rsync_daemon.port}/no-such-module/"
    config = general() + f"[flaky]\nupstream[] = {bad}\nupstream[] = {rsync_daemon.url()}\n" \
        f"rsyncdir = docs\nlocaldir = @DIR@/docs\ntime = {YEARLY}\nautoretry = 2s\n"
    daemon = mirrord(config)
    failed = daemon.cli("--run", "flaky", "--wait")
    assert failed.returncode == 1 and "flaky ended: failed" in failed.stderr
    queue = daemon.ask({"command": "queue"})["queue"]
    assert [entry["kind"] for entry in queue if entry["name"] == "flaky"] == ["retry", "run"]
    first_end = daemon.status()["flaky"]["last_end"]
    task = daemon.wait_result("flaky", timeout=15, after=first_end)
    assert task["last_result"] == "success" and task["upstream"] == rsync_daemon.url()
    assert (daemon.directory / "docs" / "README").read_text() == "upstream readme\n"
    # The state file follows within STATE_FLUSH_SECONDS (writes are coalesced).
    wait_for(lambda: load_state(daemon.directory)["flaky"]["consecutive_failures"] == 0,
             what="the state file to record the success")


def test_missing_command_is_a_failed_run_with_a_log_line(mirrord, tmp_path):
    script = tmp_path / "vanishing.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    script.chmod(0o755)
    daemon = mirrord(general() + f"[gone]\ntype = simple\ncommand = {script}\ntime = {YEARLY}\n")
    script.unlink()
    result = daemon.cli("--run", "gone")
    assert result.returncode == 1 and "could not start" in result.stderr
    assert daemon.status()["gone"]["last_result"] == "failed"
    log = next((daemon.directory / "logs").glob("gone.log.*")).read_text()
    assert f"cannot run {script}: No such file or directory" in log


def test_control_commands(mirrord):
    daemon = mirrord(general() + simple_task("quick", "exit 0", priority="3")
                     + simple_task("other", "exit 3", time="30 4 * * *"))
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o600
    queue = daemon.cli("-t")
    assert queue.returncode == 0
    header, *rows = queue.stdout.splitlines()
    assert header.split() == ["NAME", "KIND", "DUE", "PRIORITY"]
    # SystemTask's log cleaner (01:00) is a system entry in the queue; which of it and
    # "other" (04:30) comes first depends on the time of day: the queue is in due order.
    as_json = json.loads(daemon.cli("-t", "--json").stdout)
    assert [entry["due_ts"] for entry in as_json] == sorted(entry["due_ts"] for entry in as_json)
    assert [(entry["name"], entry["kind"]) for entry in as_json][-1] == ("quick", "run")
    assert [row.split()[:2] for row in rows] == [[entry["name"], entry["kind"]]
                                                 for entry in as_json]
    assert sorted(entry["kind"] for entry in as_json) == ["run", "run", "system"]
    assert daemon.cli("--run", "quick", "--wait").returncode == 0
    assert daemon.cli("--run", "other", "--wait").returncode == 1
    status = json.loads(daemon.cli("--status", "--json").stdout)
    assert status["quick"]["last_result"] == "success"
    assert (status["other"]["last_result"], status["other"]["exit_code"]) == ("failed", 3)
    assert status["other"]["next_run"].endswith("T04:30:00+00:00")
    unknown = daemon.cli("--run", "nope")
    assert unknown.returncode == 1 and "known tasks: other, quick" in unknown.stderr
    text = daemon.cli("--status")
    assert text.returncode == 0 and text.stdout.splitlines()[0].split()[:3] == [
        "NAME", "STATE", "PID"]


def test_a_task_never_runs_twice_at_once(mirrord):
    daemon = mirrord(general() + simple_task("long", "sleep 300"))
    assert daemon.cli("--run", "long").returncode == 0
    again = daemon.cli("--run", "long")
    assert again.returncode == 1 and "long is already running" in again.stderr


def test_tasks_sharing_a_localdir_never_run_together(mirrord, tmp_path):
    shared = tmp_path / "shared"
    daemon = mirrord(general() + simple_task("one", "sleep 300", localdir=str(shared))
                     + simple_task("two", "exit 0", localdir=str(shared)))
    daemon.cli("--run", "one")
    refused = daemon.cli("--run", "two")
    assert refused.returncode == 1 and "one is running and writes the same localdir" in \
        refused.stderr


def test_no_daemon_means_exit_1(tmp_path):
    (tmp_path / "mirror.ini").write_text("[general]\n")
    for args in (["-t"], ["--status"], ["--run", "x"], ["-s", "stop"], ["-s", "reload"]):
        result = subprocess.run([sys.executable, "-m", "mirror", "-c",
                                 str(tmp_path), *args], capture_output=True, text=True)
        assert result.returncode == 1, args
        assert "no mirrord is running" in result.stderr


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


@pytest.fixture
def busy_daemon(mirrord, tmp_path):
    pids = tmp_path / "pids"
    daemon = mirrord(general() + simple_task("busy", f"sleep 300 & echo $! >> {pids}; wait")
                     + simple_task("kept", "exit 0", time="15 3 * * *"))
    daemon.ask({"command": "run", "name": "busy"})
    wait_for(lambda: pids.exists() and pids.read_text().strip(), what="busy to start")
    return daemon, int(daemon.status()["busy"]["pid"]), int(pids.read_text().split()[0])


def test_sighup_keeps_running_syncs_and_applies_the_new_config(busy_daemon):
    daemon, shell, sleeper = busy_daemon
    daemon.write_config(general() + simple_task("busy", "sleep 1", time="45 5 * * *")
                        + simple_task("added", "exit 0", time="20 2 * * *"))
    os.kill(daemon.pid, signal.SIGHUP)
    wait_for(lambda: "reloaded:" in daemon.log(), what="the reload")
    status = daemon.status()
    assert set(status) == {"busy", "added"}
    assert status["busy"]["state"] == "running" and alive(shell) and alive(sleeper)
    queue = {entry["name"]: entry for entry in daemon.ask({"command": "queue"})["queue"]}
    assert "T05:45:00" in queue["busy"]["due"] and "T02:20:00" in queue["added"]["due"]
    assert "kept" not in queue


def test_sighup_with_a_broken_config_changes_nothing(busy_daemon):
    daemon, shell, _sleeper = busy_daemon
    before = daemon.ask({"command": "queue"})["queue"]
    daemon.write_config(general() + "[busy]\ntime = 99 * * * *\n")
    result = daemon.cli("-s", "reload")
    assert result.returncode == 0
    wait_for(lambda: "reload refused" in daemon.log(), what="the refusal")
    assert "[busy] time: '99 * * * *' is not a cron expression" in daemon.log()
    assert daemon.ask({"command": "queue"})["queue"] == before
    assert alive(shell)


def test_sigterm_leaves_no_orphan_and_no_zombie(busy_daemon):
    daemon, shell, sleeper = busy_daemon
    assert daemon.stop() == 0
    assert not alive(shell) and not alive(sleeper)
    assert not daemon.pidfile.exists() and not daemon.socket.exists()
    assert load_state(daemon.directory)["busy"]["result"] == "killed"
    assert "mirrord stopped" in daemon.log()


def test_s_stop_waits_until_the_daemon_has_exited(busy_daemon):
    daemon, shell, _sleeper = busy_daemon
    result = daemon.cli("-s", "stop")
    assert result.returncode == 0 and f"mirrord (pid {daemon.pid}) stopped" in result.stdout
    assert daemon.process.poll() == 0 and not alive(shell)


def test_a_second_daemon_is_refused(mirrord):
    daemon = mirrord(general())
    second = daemon.cli("-D", "-l", str(daemon.directory / "second.log"))
    assert second.returncode == 1
    assert f"already running (pid {daemon.pid}" in second.stderr


def test_restart_after_kill_9_keeps_the_state(mirrord):
    daemon = mirrord(general() + simple_task("quick", "exit 0"))
    assert daemon.cli("--run", "quick", "--wait").returncode == 0
    daemon.process.kill()
    daemon.process.wait()
    assert daemon.pidfile.exists()  # stale: nobody holds its lock
    daemon.start()
    assert daemon.status()["quick"]["last_result"] == "success"


def test_bad_config_does_not_start(tmp_path):
    (tmp_path / "mirror.ini").write_text("[general]\nmaxtasks = lots\n")
    result = subprocess.run([sys.executable, "-m", "mirror", "-c", str(tmp_path),
                             "-D", "-l", str(tmp_path / "log")], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert "[general] maxtasks: 'lots' is not a whole number" in result.stderr
    assert "mirrord does not start" in result.stderr


def test_unwritable_log_dir_is_refused(tmp_path):
    (tmp_path / "mirror.ini").write_text(general().replace("@DIR@", str(tmp_path)))
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = subprocess.run([sys.executable, "-m", "mirror", "-c", str(tmp_path),
                             "-D", "-l", str(blocker / "mirrord.log")], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 1 and "cannot create the log directory" in result.stderr


@pytest.mark.slow
def two_hundred_children(base: Path, scenario: Scenario) -> None:
    """Scheduled runs at a cron minute: an rsync and 200 shells that exit together. Most of
    it is waiting for the minute, so it runs in the background (test/integration/
    background.py)."""
    tree = base / "tree"
    tree.mkdir()
    build_upstream_tree(tree)
    rsyncd, port = start_rsync_daemon(base, {"mirror": tree})
    scenario.on_close(lambda: (rsyncd.terminate(), rsyncd.wait(10)))
    many = "".join(simple_task(f"burst{index:03d}", "sleep 1", time="* * * * *")
                   for index in range(200))
    directory = base / "daemon"
    directory.mkdir()
    (directory / "plugin.ini").write_text(NO_WEB_PAGE)
    daemon = Mirrord(directory, (general() + rsync_task(
        "tree", f"rsync://127.0.0.1:{port}/mirror/", "@DIR@/mirror", time="* * * * *")
        + many).replace("@DIR@", str(directory)))
    scenario.on_close(daemon.stop)
    daemon.start()
    due = daemon.ask({"command": "queue"})["queue"][0]["due"]
    wait_for(lambda: daemon.status()["tree"]["last_result"], timeout=75, interval=0.5,
             what="the scheduled run")
    wait_for(lambda: all(task["last_result"] for task in daemon.status().values()), timeout=30,
             what="all 200 runs")
    status = daemon.status()
    assert all(task["last_result"] == "success" for task in status.values())
    assert all(task["last_start"] and task["last_start"] >= due[:19] for task in status.values()
               if task["last_start"])
    assert snapshot(directory / "mirror") == snapshot(tree)
    assert [child for child in daemon.children() if child[1] == "Z"] == []


TWO_HUNDRED_CHILDREN = Scenario("200 children at a cron minute", two_hundred_children)


@pytest.mark.background(TWO_HUNDRED_CHILDREN)
def test_scheduled_runs_and_200_children_exiting_together():
    TWO_HUNDRED_CHILDREN.check(timeout=150)


def test_a_full_disk_does_not_end_the_daemon(mirrord):
    daemon = mirrord(general() + simple_task("quick", "exit 0"))
    logs = daemon.directory / "logs"
    logs.mkdir(exist_ok=True)
    for day in {time.strftime("%Y-%m-%d"), time.strftime("%Y-%m-%d", time.gmtime())}:
        (logs / f"quick.log.{day}").symlink_to("/dev/full")
    assert daemon.cli("--run", "quick", "--wait").returncode == 0
    assert daemon.process.poll() is None and daemon.answers()


def test_run_wait_hears_the_result_when_the_daemon_stops(mirrord):
    daemon = mirrord(general() + simple_task("long", "sleep 300"))
    waiting = subprocess.Popen(daemon.argv("--run", "long", "--wait"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    wait_for(lambda: daemon.status()["long"]["state"] == "running", what="the run")
    assert daemon.stop() == 0
    _out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 1 and "long ended: killed" in err


def test_a_task_removed_by_reload_can_still_be_cancelled(busy_daemon):
    daemon, shell, _sleeper = busy_daemon
    daemon.write_config(general())
    os.kill(daemon.pid, signal.SIGHUP)
    wait_for(lambda: "reloaded:" in daemon.log(), what="the reload")
    assert daemon.cli("--cancel", "busy").returncode == 0
    wait_for(lambda: not alive(shell), what="the cancelled run to end")
    wait_for(lambda: "busy" not in daemon.status(), what="the removed task to be forgotten")
