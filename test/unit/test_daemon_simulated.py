# SPDX-License-Identifier: GPL-3.0-or-later
"""The daemon carrying out the core's decisions, in simulated time, with no process.

A fake Runner (test/unit/fakerunner.py) stands for the operating system's processes; the
wall and monotonic clocks are fakes the tests move. The config, the task logs and the state
file are real files.
"""
from __future__ import annotations

import signal
from pathlib import Path
from zoneinfo import ZoneInfo

from mirror.config import load_config
from mirror.daemon import DaemonPaths, MirrorDaemon
from mirror.events import MirrorEvent, RunFinishedEvent
from mirror.history import RunResult, TaskHistory
from mirror.locations import locate_config
from mirror.runs import RunKind
from mirror.taskqueue import QueueKind
from mirror.views import TaskCondition
from test.unit.fakerunner import FakeProcess, FakeRunner

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC, on the hour
HOUR = 3600.0
GENERAL = ("[general]\nloadlimit = 0\nhttpconn = 0\nmaxtasks = 0\nkillgrace = 5s\n"
           "logdir = {dir}/logs\nstatefile = {dir}/state.json\n")


def simple(name: str, **extra: str) -> str:
    lines = {"type": "simple", "command": "/bin/sh", "args": "-c true", "time": "0 * * * *",
             **extra}
    return f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in lines.items())


def rsync(name: str, *upstreams: str, **extra: str) -> str:
    lines = [f"[{name}]", "type = rsync", "command = /bin/true", "time = 0 * * * *",
             "rsyncdir = /", "localdir = {dir}/" + name]
    lines += [f"upstream[] = {upstream}" for upstream in upstreams]
    lines += [f"{key} = {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


class Simulated:
    """An in-process daemon on fake clocks and a fake Runner; the wall clock starts at
    T0 - 30 s."""

    def __init__(self, directory: Path, sections: str) -> None:
        self.directory = directory
        self.write(sections)
        self.wall = T0 - 30
        self.mono = 1000.0
        self.runner = FakeRunner()
        location = locate_config(str(directory))
        config = load_config(location)
        assert not config.errors, config.errors
        self.daemon = MirrorDaemon(
            location, config, DaemonPaths(str(directory / "pid"), str(directory / "sock"),
                                          str(directory / "state.json")),
            ZoneInfo("UTC"), wall=lambda: self.wall, monotonic=lambda: self.mono,
            runner=self.runner)
        self.events: list[MirrorEvent] = []
        self.daemon.plugins.emit = self.events.append  # type: ignore[method-assign]

    def write(self, sections: str) -> None:
        text = GENERAL.format(dir=self.directory) + sections.replace("{dir}", str(self.directory))
        (self.directory / "mirror.ini").write_text(text)

    def pass_time(self, seconds: float) -> None:
        """Move both clocks on by *seconds*, without waking the loop."""
        self.wall += seconds
        self.mono += seconds

    def at(self, wall: float) -> None:
        """Move both clocks to *wall*; then what the loop does when it wakes: reap, tick."""
        assert wall >= self.wall
        self.mono += wall - self.wall
        self.wall = wall
        self.daemon.handle_sigchld()
        assert self.daemon.tick()

    def process(self, name: str) -> FakeProcess:
        """The process of *name*'s current stage."""
        run = self.daemon.core.run_of(name)
        assert run is not None and run.pid is not None, f"{name} is not running"
        return self.runner.processes[run.pid]

    def end(self, name: str, code: int) -> None:
        """*name*'s current stage exits with *code*; the daemon reaps it (SIGCHLD)."""
        self.runner.exit(self.process(name).pid, code)
        self.daemon.handle_sigchld()

    def history(self, name: str) -> TaskHistory:
        return self.daemon.states[name]

    def log(self, name: str) -> str:
        return (self.directory / "logs" / f"{name}.log.2027-01-15").read_text()

    def finished(self, name: str) -> list[RunFinishedEvent]:
        return [event for event in self.events
                if isinstance(event, RunFinishedEvent) and event.taskname == name]


def test_a_two_stage_run_starts_stage_two_when_stage_one_succeeds(tmp_path):
    sim = Simulated(tmp_path, rsync("two", "rsync://a.example/mod/", twostage="yes",
                                    firststage="pool"))
    sim.at(T0 - 1)
    assert not sim.runner.processes
    sim.at(T0)
    first = sim.process("two")
    assert "rsync://a.example/mod/pool/" in first.argv and "--delete" not in first.argv
    assert (tmp_path / "two").is_dir()  # the localdir is made before the stage starts
    assert sim.daemon.snapshot().task("two").state is TaskCondition.RUNNING
    sim.pass_time(40)
    sim.end("two", 0)
    second = sim.process("two")
    assert second.pid != first.pid and "--delete-after" in second.argv
    assert sim.daemon.core.run_of("two").stage == 2
    assert sim.history("two").result is None  # the run goes on
    sim.pass_time(20)
    sim.end("two", 0)
    history = sim.history("two")
    assert (history.result, history.stage, history.duration) == (RunResult.SUCCESS, 2, 60.0)
    assert "two" not in sim.daemon.core.running
    log = sim.log("two")
    assert log.index("start two stage 1/2 (run, upstream rsync://a.example/mod/)") \
        < log.index("end two stage 1/2: exit 0 after 40s") \
        < log.index("start two stage 2/2") < log.index("end two stage 2/2: exit 0 after 20s")
    [event] = sim.finished("two")
    assert (event.result, event.stage, event.stages) == ("success", 2, 2)


def test_a_failed_first_stage_ends_the_run(tmp_path):
    sim = Simulated(tmp_path, rsync("two", "rsync://a.example/mod/", twostage="yes",
                                    firststage="pool"))
    sim.at(T0)
    sim.end("two", 5)
    history = sim.history("two")
    assert (history.result, history.exit_code, history.stage) == (RunResult.FAILED, 5, 1)
    assert len(sim.runner.processes) == 1 and not sim.daemon.core.running


def test_a_failure_moves_the_next_run_to_the_next_upstream(tmp_path):
    sim = Simulated(tmp_path, rsync("fo", "rsync://a.example/mod/", "rsync://b.example/mod/"))
    sim.at(T0)
    assert "rsync://a.example/mod/" in sim.process("fo").argv
    sim.end("fo", 10)
    history = sim.history("fo")
    assert (history.result, history.upstream, history.upstream_index) == (
        RunResult.FAILED, "rsync://a.example/mod/", 1)
    assert (history.consecutive_failures, history.failures_total) == (1, 1)
    sim.at(T0 + HOUR)
    assert "rsync://b.example/mod/" in sim.process("fo").argv
    sim.end("fo", 0)
    history = sim.history("fo")
    assert (history.result, history.upstream, history.upstream_index) == (
        RunResult.SUCCESS, "rsync://b.example/mod/", 1)
    assert (history.consecutive_failures, history.failures_total) == (0, 1)
    assert history.last_success == T0 + HOUR
    assert [(event.previous_failures, event.consecutive_failures)
            for event in sim.finished("fo")] == [(0, 1), (1, 0)]
    sim.at(T0 + 2 * HOUR)  # a success keeps the upstream that worked
    assert "rsync://b.example/mod/" in sim.process("fo").argv


def test_a_failed_run_is_retried_after_autoretry(tmp_path):
    sim = Simulated(tmp_path, simple("flaky", autoretry="10m"))
    sim.at(T0)
    sim.pass_time(60)
    sim.end("flaky", 1)
    assert sim.finished("flaky")[0].retry_at == T0 + 660
    assert [(entry.kind, entry.due) for entry in sim.daemon.core.entries()] == [
        (QueueKind.RETRY, T0 + 660), (QueueKind.RUN, T0 + HOUR)]
    sim.at(T0 + 659)
    assert "flaky" not in sim.daemon.core.running
    sim.at(T0 + 660)
    assert sim.daemon.core.run_of("flaky").kind is RunKind.RETRY
    assert "start flaky stage 1/1 (retry)" in sim.log("flaky")
    sim.end("flaky", 0)
    assert sim.history("flaky").result is RunResult.SUCCESS
    assert [entry.kind for entry in sim.daemon.core.entries()] == [QueueKind.RUN]


def test_a_timed_out_run_gets_term_then_kill_after_killgrace(tmp_path):
    sim = Simulated(tmp_path, simple("slow", timeout="2m"))
    sim.runner.stubborn.add(str(tmp_path / "logs" / "slow.log.2027-01-15"))
    sim.at(T0)
    process = sim.process("slow")
    sim.at(T0 + 119)
    assert process.signals == []
    sim.at(T0 + 120)
    assert process.signals == [signal.SIGTERM] and process.status is None
    sim.at(T0 + 124)
    assert process.signals == [signal.SIGTERM]
    sim.at(T0 + 125)
    assert process.signals == [signal.SIGTERM, signal.SIGKILL]
    sim.daemon.handle_sigchld()
    history = sim.history("slow")
    assert (history.result, history.signal, history.exit_code) == (
        RunResult.TIMEOUT, "SIGKILL", None)
    assert history.consecutive_failures == 1
    assert "end slow stage 1/1: killed by SIGKILL after 2m5s" in sim.log("slow")
    sim.at(T0 + 126)
    assert not sim.daemon.kill_deadlines


def test_a_timed_out_run_that_obeys_term_is_retried(tmp_path):
    sim = Simulated(tmp_path, simple("slow", timeout="2m", autoretry="5m"))
    sim.at(T0)
    sim.at(T0 + 120)
    sim.daemon.handle_sigchld()
    history = sim.history("slow")
    assert (history.result, history.signal) == (RunResult.TIMEOUT, "SIGTERM")
    assert sim.finished("slow")[0].retry_at == T0 + 420


def test_cancel_ends_the_run_without_retry_or_counting_a_failure(tmp_path):
    sim = Simulated(tmp_path, simple("long", autoretry="10m"))
    sim.at(T0)
    process = sim.process("long")
    reply = sim.daemon.handle_request({"command": "cancel", "name": "long"}, None)
    assert reply == {"ok": True, "name": "long"}
    assert process.signals == [signal.SIGTERM]
    sim.daemon.handle_sigchld()
    history = sim.history("long")
    assert (history.result, history.signal) == (RunResult.CANCELLED, "SIGTERM")
    assert (history.consecutive_failures, history.failures_total) == (0, 0)
    assert [entry.kind for entry in sim.daemon.core.entries()] == [QueueKind.RUN]
    again = sim.daemon.handle_request({"command": "cancel", "name": "long"}, None)
    assert again["ok"] is False and again["error"] == "long is not running"
    unknown = sim.daemon.handle_request({"command": "cancel", "name": "nope"}, None)
    assert unknown["ok"] is False and unknown["known"] == ["long"]


def test_a_manual_run_and_one_whose_program_is_missing(tmp_path):
    sim = Simulated(tmp_path, simple("now", time="0 0 1 1 *") + simple("broken"))
    reply = sim.daemon.handle_request({"command": "run", "name": "now"}, None)
    assert reply["ok"] and reply["state"] == "running"
    assert "start now stage 1/1 (manual)" in sim.log("now")
    sim.runner.missing.add("/bin/sh")
    reply = sim.daemon.handle_request({"command": "run", "name": "broken"}, None)
    assert reply["ok"] is False and "broken could not start" in reply["error"]
    assert sim.history("broken").result is RunResult.FAILED
    assert "cannot run /bin/sh: No such file or directory" in sim.log("broken")
    assert "broken" not in sim.daemon.core.running and "now" in sim.daemon.core.running


def test_reload_while_running_never_touches_a_running_sync(tmp_path):
    sim = Simulated(tmp_path, simple("keep", args="-c old") + simple("gone"))
    sim.at(T0)
    keep, gone = sim.process("keep"), sim.process("gone")
    sim.write(simple("keep", args="-c new") + simple("fresh"))
    (tmp_path / "mirror.ini").write_text((tmp_path / "mirror.ini").read_text()
                                         .replace("killgrace = 5s", "killgrace = 9s"))
    assert sim.daemon.reload()
    assert sim.daemon.general.killgrace == 9 and sim.daemon.general is sim.daemon.core.general
    assert keep.signals == gone.signals == [] and keep.status is gone.status is None
    assert sim.daemon.core.known_names() == ["keep", "fresh", "gone"]
    assert sim.daemon.snapshot().task("gone").state is TaskCondition.RUNNING
    sim.end("keep", 0)
    sim.end("gone", 0)
    assert "gone" not in sim.daemon.states and sim.daemon.core.known_names() == ["keep", "fresh"]
    sim.at(T0 + HOUR)
    assert sim.process("keep").argv[-1] == "new" and "fresh" in sim.daemon.core.running


def test_stop_ends_every_run_as_killed(tmp_path):
    sim = Simulated(tmp_path, simple("a") + simple("b"))
    sim.at(T0)
    sim.daemon.stop("SIGTERM")
    assert all(process.signals == [signal.SIGTERM] for process in sim.runner.processes.values())
    sim.daemon.handle_sigchld()
    assert {sim.history(name).result for name in "ab"} == {RunResult.KILLED}
    assert sim.daemon.tick() is False  # nothing left: the loop ends


def test_a_system_entry_is_announced_each_time_it_is_due(tmp_path):
    from mirror.cron import CronSchedule
    from mirror.events import RunSystemTaskEvent

    sim = Simulated(tmp_path, "")
    sim.daemon.add_system_entry("logclean", CronSchedule.parse("0 * * * *"), 1)
    sim.at(T0)
    sim.at(T0 + HOUR)
    assert [(event.taskinfo.name, event.taskinfo.time) for event in sim.events
            if isinstance(event, RunSystemTaskEvent)] == [("logclean", T0), ("logclean", T0 + HOUR)]
