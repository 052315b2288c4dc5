# SPDX-License-Identifier: GPL-3.0-or-later
"""After a crash, with real processes: mirrord is killed with SIGKILL during a sync, and the
next mirrord adopts the orphan (or records the run as interrupted when it is gone), and never
touches a process that only looks like a run's.

An orphan is reparented to the nearest child subreaper above the dead mirrord. Here PID 1 may
never reap, so the first mirrord of each test runs under a small subreaper of the test's own
(REAPER), which reaps every orphan the moment it ends: a zombie would keep the run's process
group alive for mirrord. The last tests run the daemon in this process, to make pidfds fail
(mirror.daemon.open_pidfd) and drive the /proc fallback's looks by hand.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mirror import daemon as daemon_module
from mirror.config import load_config
from mirror.daemon import DaemonPaths, MirrorDaemon
from mirror.locations import locate_config
from mirror.procident import ProcessIdentity, boot_id, process_info
from mirror.runs import RunKind, RunRecord
from mirror.task import Stage
from test.integration.conftest import Mirrord, alive, general, wait_for

YEARLY = "0 0 1 1 *"  # far away: these tasks run only when asked to

# A child subreaper that starts argv[1:] (mirrord) in a session of its own and reaps every
# child and orphan until it gets SIGTERM. It prints the pid of the process it started.
REAPER = r"""
import ctypes, os, signal, sys, time
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
child = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, setsid=True,
                       file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
print(child, flush=True)
while not stopping:
    try:
        pid, _status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        pid = 0
    if not pid:
        time.sleep(0.02)
"""


def task(name: str, command: str, args: str = "", **extra: str) -> str:
    lines = {"type": "simple", "command": command, **({"args": args} if args else {}),
             "time": YEARLY, **extra}
    return f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in lines.items())


def parent_of(pid: int) -> int | None:
    info = process_info(pid)
    return None if info is None else info.parent


@dataclass
class Crash:
    """A mirrord killed with SIGKILL while task ``long`` ran (``record``: its run's record in
    the state file), and what is needed to start the next mirrord on the same config."""

    directory: Path
    config: str
    reaper: subprocess.Popen
    record: dict = field(default_factory=dict)
    next: Mirrord | None = None

    @property
    def pid(self) -> int:
        """The orphan: the process of ``long``'s stage."""
        return int(self.record["pid"])

    def start_again(self) -> Mirrord:
        """The next mirrord, on the same directory, config and state file."""
        self.next = Mirrord(self.directory, self.config).start()
        return self.next

    def task_log(self, name: str = "long") -> str:
        return "".join(path.read_text() for path in
                       sorted((self.directory / "logs").glob(f"{name}.log.*")))

    def state(self) -> dict:
        return json.loads((self.directory / "state.json").read_text())

    def settled_state(self) -> dict:
        """The state file once it holds no run in progress (writes are coalesced)."""
        def settled() -> dict | None:
            state = self.state()
            return None if state["runs"] else state
        return wait_for(settled, what="the state file to drop the run's record")


@pytest.fixture
def crash(tmp_path) -> Iterator[callable]:
    """Factory: ``crash(config)`` starts mirrord under REAPER, runs ``long``, waits until its
    record is in the state file, kills mirrord with SIGKILL and returns the :class:`Crash`."""
    crashes: list[Crash] = []

    def make(config: str) -> Crash:
        directory = tmp_path / f"c{len(crashes)}"
        directory.mkdir()
        (directory / "plugin.ini").write_text("[slatefish]\nenabled = 0\n")
        config = config.replace("@DIR@", str(directory))
        first = Mirrord(directory, config)
        reaper = subprocess.Popen(
            [sys.executable, "-c", REAPER,
             *first.argv("-D", "-l", str(first.logfile), "-L", "debug")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, TZ="UTC"))
        made = Crash(directory, config, reaper)
        crashes.append(made)
        daemon_pid = int(reaper.stdout.readline())
        wait_for(first.answers, what="the first mirrord")
        assert first.cli("--run", "long").returncode == 0
        made.record = wait_for(lambda: made.state()["runs"].get("long"),
                               what="the run's record in the state file")
        assert first.status()["long"]["pid"] == made.pid
        os.kill(daemon_pid, signal.SIGKILL)
        wait_for(lambda: not alive(daemon_pid), what="the first mirrord to die")
        # The orphan lives on, now the reaper's.
        wait_for(lambda: parent_of(made.pid) == reaper.pid, what="the orphan to be reparented")
        assert alive(made.pid)
        return made

    yield make
    for made in crashes:
        if made.next is not None:
            made.next.stop()
        # Whatever is left under the reaper (orphans of a failed test) goes, group and all.
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and parent_of(int(entry.name)) == made.reaper.pid:
                for kill in (os.killpg, os.kill):
                    with contextlib.suppress(OSError):
                        kill(int(entry.name), signal.SIGKILL)
        made.reaper.terminate()
        made.reaper.wait(10)
        made.reaper.stdout.close()


LONG = task("long", "sleep", "300", localdir="@DIR@/shared", autoretry="10m")
OTHER = task("other", "true", localdir="@DIR@/shared/inside")


def test_an_orphan_is_adopted_holds_its_directory_and_ends_unattended(crash):
    made = crash(general() + LONG + OTHER)
    daemon = made.start_again()
    status = json.loads(daemon.cli("--status", "--json").stdout)["long"]
    assert (status["state"], status["pid"], status["stage"]) == ("running", made.pid, 1)
    assert status["started_ts"] == made.record["started"]  # the original start
    assert "long: took over its run in progress" in daemon.log()
    assert "not a child: its exit status will not be known" in daemon.log()
    # The adopted run holds its localdir and is not started twice.
    refused = daemon.cli("--run", "other")
    assert refused.returncode == 1
    assert "long is running and writes" in refused.stderr and "/shared" in refused.stderr
    again = daemon.ask({"command": "run", "name": "long"})
    assert not again["ok"] and again["error"] == "long is already running"
    assert alive(made.pid)

    os.kill(made.pid, signal.SIGTERM)  # the sync ends on its own, unwatched by a parent
    task_status = daemon.wait_result("long", timeout=10)
    assert task_status["last_result"] == "unattended"
    assert task_status["jobs_status"] == "failed" and task_status["exit_code"] is None
    assert task_status["message"].startswith("Ended while mirrord was not watching it")
    assert (task_status["consecutive_failures"], task_status["failures_total"]) == (1, 1)
    state = made.settled_state()
    assert state["tasks"]["long"]["result"] == "unattended"
    assert state["tasks"]["long"]["consecutive_failures"] == 1
    footer = made.task_log().splitlines()[-1]
    assert " end long stage 1/1: ended while unattended: exit status unknown after " in footer
    queue = daemon.ask({"command": "queue"})["queue"]
    assert ("long", "retry") in [(entry["name"], entry["kind"]) for entry in queue]
    # The directory is free again.
    assert daemon.ask({"command": "run", "name": "other", "wait": True})["result"] == "success"


def test_stop_ends_an_adopted_group_and_records_it_as_killed(crash):
    script = "sleep 300 & echo $! > @DIR@/grandchild; wait"
    made = crash(general() + task("long", "sh", f"-c '{script}'"))
    grandchild = int(wait_for(lambda: (made.directory / "grandchild").read_text().strip()
                              if (made.directory / "grandchild").exists() else None,
                              what="the grandchild's pid"))
    assert alive(grandchild) and os.getpgid(grandchild) == made.pid
    daemon = made.start_again()
    assert daemon.status()["long"]["pid"] == made.pid
    stopped = daemon.cli("-s", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert daemon.process.wait(10) == 0
    assert not alive(made.pid) and not alive(grandchild)
    state = made.state()
    assert state["runs"] == {}
    assert state["tasks"]["long"]["result"] == "killed"
    assert state["tasks"]["long"]["consecutive_failures"] == 0
    assert "long: killed after" in daemon.log()


def test_a_run_whose_process_is_gone_is_interrupted_and_retried_not_counted(crash):
    made = crash(general() + task("long", "sleep", "300", autoretry="10m"))
    os.kill(made.pid, signal.SIGKILL)  # gone with mirrord (say, the OOM killer)
    wait_for(lambda: process_info(made.pid) is None, what="the orphan to be reaped")
    # A streak of failures before the crash: an interruption neither adds to it nor ends it.
    state = made.state()
    state["tasks"]["long"].update(consecutive_failures=2, failures_total=4)
    (made.directory / "state.json").write_text(json.dumps(state))
    daemon = made.start_again()
    task_status = daemon.status()["long"]
    assert (task_status["state"], task_status["last_result"]) == ("idle", "interrupted")
    assert task_status["message"].startswith("Interrupted: ")
    assert (task_status["consecutive_failures"], task_status["failures_total"]) == (2, 4)
    queue = json.loads(daemon.cli("-t", "--json").stdout)
    assert ("long", "retry") in [(entry["name"], entry["kind"]) for entry in queue]
    retry = next(entry for entry in queue if (entry["name"], entry["kind"]) == ("long", "retry"))
    assert 500 < retry["due_ts"] - time.time() <= 600
    footer = made.task_log().splitlines()[-1]
    assert " end long stage 1/1: interrupted: mirrord was not running after " in footer
    saved = made.settled_state()
    assert saved["tasks"]["long"]["result"] == "interrupted"
    assert saved["tasks"]["long"]["consecutive_failures"] == 2
    assert "long: interrupted after" in daemon.log()


def test_a_process_that_only_looks_like_a_run_s_is_never_adopted_or_signalled(tmp_path):
    # Records forged, or left by a crash long ago whose pid a stranger has now: each points at
    # a live process of this test, in its own session and group.
    strangers = [subprocess.Popen(["sleep", "300"], start_new_session=True,
                                  env=dict(os.environ, **extra))
                 for extra in ({"MIRROR_RUN_ID": "feedfeedfeedfeed"}, {})]
    try:
        wrong_start, no_run_id = (ProcessIdentity.of(process.pid, "feedfeedfeedfeed")
                                  for process in strangers)
        assert wrong_start is not None and no_run_id is not None and wrong_start.matches()
        wrong_start = ProcessIdentity(wrong_start.pid, wrong_start.start_ticks + 1, boot_id(),
                                      wrong_start.run_id)
        logs = tmp_path / "logs"

        def record(name: str, identity: ProcessIdentity) -> dict:
            return RunRecord(name=name, kind=RunKind.RUN, plan=(Stage(("/bin/sleep", "300")),),
                             stage=1, upstream=None, upstream_index=0,
                             started=time.time() - 60, stage_started=time.time() - 60,
                             # Not trusted: the run's log is where logdir puts it.
                             log_path=str(tmp_path / "forged" / f"{name}.log"),
                             first_pid=identity.pid,
                             identity=identity, ending=None, localdir=None,
                             resolved=None).to_dict()

        (tmp_path / "state.json").write_text(json.dumps({"version": 1, "tasks": {}, "runs": {
            "reused": record("reused", wrong_start),
            "stranger": record("stranger", no_run_id),
            # Not configured: an adopted run of it would have its group ended.
            "removed": record("removed", wrong_start)}}))
        (tmp_path / "plugin.ini").write_text("[slatefish]\nenabled = 0\n")
        config = general(str(tmp_path)) + task("reused", "sleep", "300") + task(
            "stranger", "sleep", "300")
        daemon = Mirrord(tmp_path, config).start()
        try:
            status = daemon.status()
            assert [status[name]["last_result"] for name in ("reused", "stranger")] == [
                "interrupted", "interrupted"]
            assert not any(status[name]["running"] for name in ("reused", "stranger"))
            assert all(alive(process.pid) for process in strangers)
            stopped = daemon.cli("-s", "stop")
            assert stopped.returncode == 0, stopped.stderr
            assert daemon.process.wait(10) == 0
        finally:
            daemon.stop()
        assert all(alive(process.pid) for process in strangers)  # never signalled
        assert all(process.poll() is None for process in strangers)
        log = daemon.log()
        assert "took over" not in log and "no longer configured" not in log
        assert "sending SIGTERM to process group" not in log
        assert "interrupted: mirrord was not running" in next(
            logs.glob("reused.log.*")).read_text()
        assert not (tmp_path / "forged").exists()
    finally:
        for process in strangers:
            process.kill()
            process.wait()


def test_an_adopted_run_s_timeout_counts_from_its_original_start(crash):
    made = crash(general() + task("long", "sleep", "300"))
    # The next mirrord's config gives the task a timeout that has passed since the run began.
    time.sleep(max(0.0, made.record["started"] + 1.2 - time.time()))
    made.config += "timeout = 1s\n"
    daemon = made.start_again()
    task_status = daemon.wait_result("long", timeout=10)
    assert task_status["last_result"] == "timeout"
    assert task_status["consecutive_failures"] == 1
    assert not alive(made.pid)
    assert "long: timeout; sending SIGTERM to process group" in daemon.log()


@pytest.fixture
def orphan() -> Iterator[tuple[int, str]]:
    """A ``sleep`` started like a stage (its own session, a run id in its environment) whose
    parent is REAPER, not this process: (its pid, the run id)."""
    run_id = os.urandom(8).hex()
    reaper = subprocess.Popen([sys.executable, "-c", REAPER, shutil.which("sleep"), "300"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env=dict(os.environ, MIRROR_RUN_ID=run_id))
    pid = int(reaper.stdout.readline())
    try:
        yield pid, run_id
    finally:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        reaper.terminate()
        reaper.wait(10)
        reaper.stdout.close()


def no_pidfds(pid: int) -> int:
    """mirror.daemon.open_pidfd on a kernel before Linux 5.3."""
    raise OSError(errno.ENOSYS, "Function not implemented")


def in_process_daemon(directory: Path, sections: str, runs: dict) -> MirrorDaemon:
    """A MirrorDaemon in this process, with real processes, whose state file holds *runs*."""
    (directory / "mirror.ini").write_text(general(str(directory)) + sections)
    (directory / "logs").mkdir(exist_ok=True)  # mirror.lifecycle makes it before the daemon
    (directory / "state.json").write_text(json.dumps({"version": 1, "tasks": {},
                                                      "runs": runs}))
    location = locate_config(str(directory))
    config = load_config(location)
    assert not config.errors, config.errors
    daemon = MirrorDaemon(location, config, DaemonPaths(
        str(directory / "pid"), str(directory / "sock"), str(directory / "state.json")),
        ZoneInfo("UTC"))
    daemon.plugins.emit = lambda event: None  # type: ignore[method-assign]
    return daemon


def adopted_record(pid: int, run_id: str, directory: Path) -> dict:
    identity = ProcessIdentity.of(pid, run_id)
    assert identity is not None and identity.matches()
    return RunRecord(name="long", kind=RunKind.MANUAL, plan=(Stage(("/bin/sleep", "300")),),
                     stage=1, upstream=None, upstream_index=0, started=time.time() - 5,
                     stage_started=time.time() - 5, log_path=str(directory / "long.log"),
                     first_pid=pid, identity=identity, ending=None, localdir=None,
                     resolved=None).to_dict()


def test_without_pidfds_adopted_runs_are_looked_for_in_proc(orphan, tmp_path, monkeypatch,
                                                            caplog):
    pid, run_id = orphan
    monkeypatch.setattr(daemon_module, "open_pidfd", no_pidfds)
    monkeypatch.setattr(daemon_module, "ADOPTED_POLL_SECONDS", 0.2)
    daemon = in_process_daemon(tmp_path, task("long", "sleep", "300"),
                               {"long": adopted_record(pid, run_id, tmp_path)})
    caplog.set_level(logging.WARNING, logger="mirror.daemon")
    daemon._take_over_runs()
    run = daemon.core.run_of("long")
    assert run is not None and run.unattended and daemon.watched == {}
    assert "cannot watch adopted runs through a pidfd" in caplog.text
    assert "looking at /proc every" in caplog.text and len(caplog.records) == 1
    assert daemon._adopted_poll_at is not None
    time.sleep(0.25)
    daemon._poll_adopted_when_due()  # still alive: still running, looked for again later
    assert "long" in daemon.core.running and daemon._adopted_poll_at is not None
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: process_info(pid) is None, what="the orphan to be reaped")
    assert "long" in daemon.core.running  # not before the next look
    time.sleep(0.25)
    daemon._poll_adopted_when_due()
    assert "long" not in daemon.core.running and daemon._adopted_poll_at is None
    assert daemon.states["long"].result == "unattended"
    assert "ended while unattended" in next((tmp_path / "logs").glob("long.log.*")).read_text()


def test_a_pid_taken_by_another_process_before_the_end_is_noticed_is_not_signalled(
        orphan, tmp_path, monkeypatch):
    # Noticed late (by polling), an adopted process's pid may belong to a new process that
    # leads a group of its own: that group is not the run's, and must not get SIGTERM.
    pid, run_id = orphan
    monkeypatch.setattr(daemon_module, "open_pidfd", no_pidfds)
    daemon = in_process_daemon(tmp_path, task("long", "sleep", "300"),
                               {"long": adopted_record(pid, run_id, tmp_path)})
    daemon._take_over_runs()
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        run = daemon.core.run_of("long")
        assert run is not None and run.unattended
        # As if the orphan had ended and its pid gone to the stranger, a group leader.
        info = process_info(stranger.pid)
        assert info is not None
        run.pid = stranger.pid
        run.identity = ProcessIdentity(stranger.pid, info.start_ticks - 1, boot_id(), run_id)
        daemon._adopted_ended("long")
        assert daemon.states["long"].result == "unattended"
        assert daemon.kill_deadlines == {}
        time.sleep(0.1)
        assert stranger.poll() is None and alive(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()


def test_a_process_gone_before_its_pidfd_is_opened_ends_the_run_without_polling(
        orphan, tmp_path, monkeypatch, caplog):
    pid, run_id = orphan

    def gone(pid: int) -> int:
        raise ProcessLookupError(errno.ESRCH, "No such process")

    monkeypatch.setattr(daemon_module, "open_pidfd", gone)
    daemon = in_process_daemon(tmp_path, task("long", "sleep", "300"),
                               {"long": adopted_record(pid, run_id, tmp_path)})
    caplog.set_level(logging.WARNING, logger="mirror.daemon")
    daemon._take_over_runs()
    assert "long" not in daemon.core.running
    assert daemon.states["long"].result == "unattended"
    # Not taken for a kernel without pidfds: no warning, no looking at /proc.
    assert daemon._adopted_poll_at is None and "pidfd" not in caplog.text
