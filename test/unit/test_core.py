# SPDX-License-Identifier: GPL-3.0-or-later
"""The scheduling core, driven with a simulated clock through days and weeks."""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from mirror.core import DELAY, EXPIRE, SKIP, START, SYSTEM_DUE, WAIT, SchedulingCore
from mirror.cron import CronSchedule
from mirror.kinds.rsync import RsyncOptions
from mirror.kinds.simple import SimpleOptions
from mirror.policy import Conditions
from mirror.task import GeneralSettings, TaskSpec
from mirror.taskqueue import RETRY, RUN

ZONE = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 7, 1, tzinfo=ZONE).timestamp()  # a Wednesday, 00:00 local
MINUTE = 60
HOUR = 3600
QUIET = Conditions()
END = "end"


def task(name: str, time: str, **overrides) -> TaskSpec:
    values = dict(name=name, enabled=True, time=time, schedule=CronSchedule.parse(time),
                  options=SimpleOptions(command="/bin/true"))
    values.update(overrides)
    return TaskSpec(**values)


class Simulation:
    """Drives the core with a fake clock that starts one second before T0.

    Each started run lasts ``durations[name]`` seconds (60 by default) and then
    succeeds unless ``outcome(name, end_time)`` says otherwise; a timed-out run
    is killed at once.
    """

    def __init__(self, tasks, general=None, durations=None, outcome=None, resolve_path=None):
        self.now = T0 - 1
        extra = {} if resolve_path is None else {"resolve_path": resolve_path}
        self.core = SchedulingCore(tasks, general or GeneralSettings(), ZONE, self.now, **extra)
        self.durations = durations or {}
        self.outcome = outcome or (lambda name, end: True)
        self.ends: dict[str, float] = {}
        self.log: list[tuple[float, str, str, str]] = []

    def run_until(self, end: float, conditions: Conditions = QUIET) -> None:
        """Process everything due up to and including *end*."""
        while True:
            wait = self.core.seconds_until_next(self.now)
            times = list(self.ends.values()) + ([] if wait is None else [self.now + wait])
            if not times or min(times) > end:
                self.now = end
                return
            self.now = min(times)
            for name, finish in sorted(self.ends.items()):
                if finish <= self.now:
                    del self.ends[name]
                    self.core.finished(name, self.now, self.outcome(name, self.now))
                    self.log.append((self.now, END, name, ""))
            for decision in list(self.core.due(self.now, conditions)):
                self.log.append((self.now, decision.action, decision.name, decision.kind))
                if decision.action == START:
                    self.ends[decision.name] = self.now + self.durations.get(decision.name, 60)
                elif decision.action == EXPIRE:
                    self.ends[decision.name] = self.now

    def events(self, unit: float = MINUTE, actions=None) -> list[tuple]:
        return [(round((when - T0) / unit, 2), action, name, kind)
                for when, action, name, kind in self.log if actions is None or action in actions]


def test_a_week_of_runs_matches_the_schedules():
    sim = Simulation([task("hourly", "0 * * * *"), task("every2h", "* */2 * * *"),
                      task("daily", "30 4 * * *")])
    sim.run_until(T0 + 7 * 24 * HOUR - 1)
    counts = Counter(name for _when, action, name, _kind in sim.log if action == START)
    assert counts == {"hourly": 168, "every2h": 84, "daily": 7}
    daily = [when for when, action, name, _ in sim.log if action == START and name == "daily"]
    assert {datetime.fromtimestamp(when, ZONE).strftime("%H:%M") for when in daily} == {"04:30"}


def test_same_due_time_starts_in_priority_order():
    sim = Simulation([task("low", "0 1 * * *", priority=9), task("high", "0 1 * * *", priority=1),
                      task("mid", "0 1 * * *", priority=5)])
    sim.run_until(T0 + 2 * HOUR)
    assert [name for _w, action, name, _k in sim.log if action == START] == ["high", "mid", "low"]


def test_disabled_tasks_are_not_queued():
    sim = Simulation([task("off", "* * * * *", enabled=False)])
    assert sim.core.seconds_until_next(sim.now) is None


def test_a_task_still_running_is_skipped_and_queued_for_its_next_time():
    sim = Simulation([task("slow", "0 * * * *")], durations={"slow": 2.5 * HOUR})
    sim.run_until(T0 + 5.9 * HOUR)
    assert [(when, action) for when, action, _n, _k in sim.events(HOUR)] == [
        (0, START), (1, SKIP), (2, SKIP), (2.5, END), (3, START), (4, SKIP), (5, SKIP), (5.5, END)]
    assert sim.core.queue.get(RUN, "slow").due == T0 + 6 * HOUR


def test_timeout_fires_and_is_cancelled_when_the_run_ends_first():
    sim = Simulation([task("t", "0 * * * *", timeout=600)], durations={"t": 3000})
    sim.run_until(T0 + 700)
    assert [(when, action) for when, action, _n, _k in sim.events(1)] == [
        (0, START), (600, EXPIRE), (600, END)]
    quick = Simulation([task("q", "0 * * * *", timeout=600)], durations={"q": 10})
    quick.run_until(T0 + 700)
    assert [action for _w, action, _n, _k in quick.log] == [START, END]


def test_autoretry_after_a_failure_before_the_next_run():
    sim = Simulation([task("r", "0 */6 * * *", autoretry=600)],
                     outcome=lambda name, end: end != T0 + MINUTE)
    sim.run_until(T0 + 2 * HOUR)
    assert sim.events(actions={START}) == [(0, START, "r", RUN), (11, START, "r", RETRY)]


def test_no_retry_when_the_next_run_comes_first():
    sim = Simulation([task("r", "*/5 * * * *", autoretry=HOUR)], outcome=lambda name, end: False)
    sim.run_until(T0 + 30 * MINUTE)
    assert {kind for _w, action, _n, kind in sim.log if action == START} == {RUN}
    assert sim.core.queue.get(RETRY, "r") is None


def test_a_run_clears_a_pending_retry():
    core = SchedulingCore([task("r", "0 0 * * *", autoretry=600)], GeneralSettings(), ZONE, T0)
    core.start_now("r", T0 + 10)
    assert core.finished("r", T0 + 20, succeeded=False) == T0 + 620
    assert core.queue.get(RETRY, "r").due == T0 + 620
    core.start_now("r", T0 + 30)
    assert core.queue.get(RETRY, "r") is None
    assert core.finished("r", T0 + 40, succeeded=True) is None
    assert core.queue.get(RETRY, "r") is None


def test_high_load_delays_by_30_minutes_until_the_scheduled_time():
    busy = Conditions(load=5.0)  # loadlimit 2: ceiling -4.55*2.5+14.55 = 3.175
    sim = Simulation([task("low", "0 */2 * * *", priority=8),
                      task("top", "0 */2 * * *", priority=3)],
                     general=GeneralSettings(loadlimit=2.0))
    sim.run_until(T0 + 2 * HOUR - 1, busy)
    assert sim.events(actions={START, DELAY}) == [
        (0, START, "top", RUN), (0, DELAY, "low", RUN), (30, DELAY, "low", RUN),
        (60, DELAY, "low", RUN), (90, DELAY, "low", RUN)]
    assert sim.core.queue.get(RUN, "low").due == T0 + 2 * HOUR


def test_delay_goes_to_the_next_scheduled_time_when_that_is_sooner():
    sim = Simulation([task("often", "*/20 * * * *", priority=8)],
                     general=GeneralSettings(loadlimit=2.0))
    sim.run_until(T0, Conditions(load=5.0))
    assert sim.events() == [(0, DELAY, "often", RUN)]
    assert sim.core.queue.get(RUN, "often").due == T0 + 20 * MINUTE


def test_a_delayed_run_starts_once_the_load_drops():
    sim = Simulation([task("low", "0 0 * * *", priority=8)], general=GeneralSettings(loadlimit=2.0))
    sim.run_until(T0, Conditions(load=9.0))
    sim.run_until(T0 + 31 * MINUTE, QUIET)
    assert [(when, action) for when, action, _n, _k in sim.events()] == [
        (0, DELAY), (30, START), (31, END)]


def test_a_refused_retry_is_delayed_too():
    sim = Simulation([task("r", "0 0 * * *", autoretry=600, priority=9)],
                     general=GeneralSettings(loadlimit=2.0), outcome=lambda name, end: False)
    sim.run_until(T0 + MINUTE)
    sim.run_until(T0 + 12 * MINUTE, Conditions(load=9.0))
    assert sim.events()[-1] == (11, DELAY, "r", RETRY)
    assert sim.core.queue.get(RETRY, "r").due == T0 + 41 * MINUTE


def test_maxtasks_holds_back_low_priorities():
    tasks = [task(f"t{i}", "0 1 * * *", priority=5) for i in range(4)]
    tasks.append(task("urgent", "0 1 * * *", priority=2))
    sim = Simulation(tasks, general=GeneralSettings(maxtasks=2))
    sim.run_until(T0 + HOUR)
    assert [(action, name) for _w, action, name, _k in sim.log] == [
        (START, "urgent"), (START, "t0"), (DELAY, "t1"), (DELAY, "t2"), (DELAY, "t3")]


def test_start_now_and_system_entries():
    core = SchedulingCore([task("a", "0 0 * * *", timeout=60)], GeneralSettings(), ZONE, T0)
    core.start_now("a", T0)
    assert "a" in core.running
    with pytest.raises(ValueError, match="already running"):
        core.start_now("a", T0)
    with pytest.raises(KeyError):
        core.start_now("nope", T0)
    core.schedule_system("logclean", T0 + 5)
    decisions = list(core.due(T0 + 60, QUIET))
    assert [(d.action, d.name) for d in decisions] == [(SYSTEM_DUE, "logclean"), (EXPIRE, "a")]


def test_a_dst_week_in_berlin():
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 10, 22, tzinfo=berlin).timestamp()
    end = start + 7 * 24 * HOUR  # 168 real hours, across the fall-back night
    core = SchedulingCore([task("fixed", "30 2 * * *"), task("starred", "30 * * * *")],
                     GeneralSettings(), berlin, start)
    now, seen = start, Counter()
    while now + core.seconds_until_next(now) < end:
        now += core.seconds_until_next(now)
        for decision in core.due(now, QUIET):
            seen[decision.name] += 1
            core.finished(decision.name, now, True)
    assert seen == {"fixed": 7, "starred": 168}


def test_a_task_waits_while_another_writes_its_localdir_then_starts():
    sim = Simulation([task("first", "0 1 * * *", localdir="/srv/x", priority=1),
                      task("second", "0 1 * * *", localdir="/srv/x", priority=2)],
                     durations={"first": 600})
    sim.run_until(T0 + 72 * MINUTE)
    assert [(when, action, name) for when, action, name, _k in sim.events()] == [
        (60, START, "first"), (60, "wait", "second"), (70, END, "first"), (70, START, "second"),
        (71, END, "second")]
    assert sim.core.queue.get(RUN, "second").due == T0 + 25 * HOUR


def test_reload_adds_removes_and_changes_without_touching_runs():
    core = SchedulingCore([task("keep", "0 1 * * *"), task("gone", "0 2 * * *", localdir="/srv/g"),
                      task("moved", "0 3 * * *"), task("off", "0 4 * * *")],
                     GeneralSettings(), ZONE, T0)
    core.start_now("gone", T0 + 10)
    core.reload([task("keep", "0 1 * * *", priority=2), task("moved", "30 5 * * *"),
                 task("off", "0 4 * * *", enabled=False), task("new", "0 6 * * *")],
                GeneralSettings(maxtasks=3), T0 + 20)
    due = {(entry.kind, entry.name): entry for entry in core.queue.entries()}
    assert set(due) == {(RUN, "keep"), (RUN, "moved"), (RUN, "new")}
    assert due[(RUN, "keep")].priority == 2 and due[(RUN, "keep")].due == T0 + HOUR
    assert due[(RUN, "moved")].due == T0 + 5.5 * HOUR
    assert "gone" in core.running and "gone" in core.retired and core.general.maxtasks == 3
    core.finished("gone", T0 + 30, succeeded=False)
    assert "gone" not in core.retired and core.writer_of(task("x", "@daily", localdir="/srv/g")) \
        is None


def test_clock_jump_moves_durations_but_not_scheduled_runs():
    core = SchedulingCore([task("t", "0 5 * * *", timeout=HOUR, autoretry=600)],
                     GeneralSettings(), ZONE, T0)
    core.start_now("t", T0)
    core.finished("t", T0 + 60, succeeded=False)   # retry at T0 + 660
    core.start_now("t", T0 + 700)                   # timeout at T0 + 4300
    core.clock_jumped(2 * HOUR)
    due = {entry.kind: entry.due for entry in core.queue.entries()}
    assert due == {RUN: T0 + 5 * HOUR, "timeout": T0 + 700 + HOUR + 2 * HOUR}


def test_wall_clock_steps_run_no_slot_twice_and_lose_none():
    core = SchedulingCore([task("hourly", "0 * * * *")], GeneralSettings(), ZONE, T0 - 1)
    assert [d.action for d in core.due(T0, QUIET)] == [START]
    core.finished("hourly", T0 + 60, True)
    # Stepped back half an hour: the 00:00 slot that already ran does not come again.
    assert list(core.due(T0 - 1800, QUIET)) == []
    assert core.seconds_until_next(T0 - 1800) == 1.5 * HOUR
    # Stepped forward five hours: the missed slots are one run now, then the schedule goes on.
    decisions = list(core.due(T0 + 5 * HOUR + 1, QUIET))
    assert [(d.action, d.name) for d in decisions] == [(START, "hourly")]
    assert core.queue.get(RUN, "hourly").due == T0 + 6 * HOUR


def test_a_waiting_task_disabled_by_reload_does_not_start():
    core = SchedulingCore([task("a", "0 0 1 1 *", localdir="/srv/x"),
                      task("b", "0 1 * * *", localdir="/srv/x")], GeneralSettings(), ZONE, T0)
    core.start_now("a", T0)
    assert [d.action for d in core.due(T0 + HOUR, QUIET)] == ["wait"]
    core.reload([task("a", "0 0 1 1 *", localdir="/srv/x"),
                 task("b", "0 1 * * *", localdir="/srv/x", enabled=False)],
                GeneralSettings(), T0 + HOUR + 1)
    core.finished("a", T0 + HOUR + 2, True)
    assert core.queue.get(RUN, "b") is None


def test_the_localdir_a_run_started_with_is_released_after_a_reload_moves_it():
    core = SchedulingCore([task("a", "0 0 1 1 *", localdir="/srv/old"),
                      task("b", "0 0 1 1 *", localdir="/srv/old")], GeneralSettings(), ZONE, T0)
    core.start_now("a", T0)
    core.reload([task("a", "0 0 1 1 *", localdir="/srv/new"),
                 task("b", "0 0 1 1 *", localdir="/srv/old")], GeneralSettings(), T0 + 1)
    core.finished("a", T0 + 2, True)
    core.start_now("b", T0 + 3)  # no longer blocked by a run that has ended


def test_no_retry_after_a_cancel_or_for_a_disabled_task():
    core = SchedulingCore([task("r", "0 0 1 1 *", autoretry=60),
                      task("off", "0 0 1 1 *", autoretry=60, enabled=False)],
                     GeneralSettings(), ZONE, T0)
    core.start_now("r", T0)
    assert core.finished("r", T0 + 1, succeeded=False, may_retry=False) is None
    core.start_now("off", T0)
    assert core.finished("off", T0 + 1, succeeded=False) is None
    assert core.queue.get(RETRY, "r") is None and core.queue.get(RETRY, "off") is None


class FakeFilesystem:
    """A path resolver over a table of symlinks (directory → target), counting its calls.

    Like ``os.path.realpath``, it resolves every symlinked prefix of a path.
    """

    def __init__(self, links: dict[str, str] | None = None) -> None:
        self.links = dict(links or {})
        self.calls: list[str] = []

    def __call__(self, path: str) -> str:
        self.calls.append(path)
        parts = [part for part in path.split("/") if part]
        resolved = ""
        for part in parts:
            resolved = self.links.get(f"{resolved}/{part}", f"{resolved}/{part}")
        return resolved or "/"


def running_together(sim: Simulation) -> set[frozenset[str]]:
    """The pairs of tasks whose runs overlapped in the simulation's log."""
    spans, starts = [], {}
    for when, action, name, _kind in sim.log:
        if action == START:
            starts[name] = when
        elif action == END:
            spans.append((starts.pop(name), when, name))
    return {frozenset((a, b)) for i, (s1, e1, a) in enumerate(spans)
            for s2, e2, b in spans[i + 1:] if s1 < e2 and s2 < e1}


def test_aliases_and_nested_localdirs_never_run_together():
    fs = FakeFilesystem({"/srv/link": "/srv/a"})
    tasks = [task("plain", "0 1 * * *", localdir="/srv/a", priority=1),
             task("alias", "0 1 * * *", localdir="/srv/link/", priority=2),
             task("nested", "0 1 * * *", localdir="/srv/a/b", priority=3),
             task("elsewhere", "0 1 * * *", localdir="/srv/ab", priority=4)]
    sim = Simulation(tasks, durations={"plain": 600, "alias": 300, "nested": 120},
                     resolve_path=fs)
    sim.run_until(T0 + 2 * HOUR)
    # /srv/ab is not inside /srv/a, so only that one runs beside the others.
    assert running_together(sim) == {frozenset(("plain", "elsewhere"))}
    assert [(when, action, name) for when, action, name, _k in sim.events()
            if action in (START, WAIT)] == [
        (60, START, "plain"), (60, WAIT, "alias"), (60, WAIT, "nested"), (60, START, "elsewhere"),
        (70, START, "alias"), (70, WAIT, "nested"), (75, START, "nested")]


@pytest.mark.parametrize("outer_first", [True, False])
def test_a_directory_and_one_inside_it_exclude_each_other_both_ways(outer_first):
    outer = task("outer", "0 0 1 1 *", localdir="/srv/a")
    inner = task("inner", "0 0 1 1 *", localdir="/srv/a/b/c")
    core = SchedulingCore([outer, inner], GeneralSettings(), ZONE, T0)
    first, second = (outer, inner) if outer_first else (inner, outer)
    core.start_now(first.name, T0)
    assert core.writer_of(second) == first.name
    with pytest.raises(ValueError, match=f"{first.name} is running and writes {first.localdir}"):
        core.start_now(second.name, T0)
    core.finished(first.name, T0 + 1, True)
    core.start_now(second.name, T0 + 2)


def test_refusals_and_waits_name_both_directories():
    fs = FakeFilesystem({"/srv/link": "/srv/a"})
    core = SchedulingCore([task("plain", "0 0 1 1 *", localdir="/srv/a"),
                      task("twin", "0 0 1 1 *", localdir="/srv/a"),
                      task("alias", "0 1 * * *", localdir="/srv/link"),
                      task("nested", "0 0 1 1 *", localdir="/srv/link/b"),
                      task("root", "0 0 1 1 *", localdir="/")],
                     GeneralSettings(), ZONE, T0, resolve_path=fs)
    core.start_now("plain", T0)

    def refusal(name: str) -> str:
        with pytest.raises(ValueError) as raised:
            core.start_now(name, T0)
        return str(raised.value)

    assert refusal("twin") == "plain is running and writes the same localdir /srv/a"
    assert refusal("alias") == ("plain is running and writes the same localdir /srv/a as "
                                "/srv/link (→ /srv/a)")
    assert refusal("nested") == ("plain is running and writes /srv/a, which contains the "
                                 "localdir /srv/link/b (→ /srv/a/b)")
    assert refusal("root") == "plain is running and writes /srv/a, which is inside the localdir /"
    (wait,) = list(core.due(T0 + HOUR, QUIET))
    assert (wait.action, wait.name, wait.reason) == (
        WAIT, "alias", "plain is writing /srv/a, the same directory as /srv/link (→ /srv/a); "
                       "starts when it ends")


def test_a_run_keeps_the_directory_it_resolved_when_it_started():
    fs = FakeFilesystem({"/srv/link": "/srv/a"})
    core = SchedulingCore([task("via-link", "0 0 1 1 *", localdir="/srv/link"),
                      task("a", "0 0 1 1 *", localdir="/srv/a"),
                      task("b", "0 0 1 1 *", localdir="/srv/b")],
                     GeneralSettings(), ZONE, T0, resolve_path=fs)
    core.start_now("via-link", T0)
    fs.links["/srv/link"] = "/srv/b"  # re-pointed while the run goes on
    with pytest.raises(ValueError, match="via-link is running and writes the same localdir "
                                         r"/srv/link \(→ /srv/a\) as /srv/a"):
        core.start_now("a", T0 + 1)
    core.start_now("b", T0 + 2)  # what the link points at now is not held by the run
    core.finished("via-link", T0 + 3, True)
    core.start_now("a", T0 + 4)
    with pytest.raises(ValueError, match="b is running"):  # resolved anew: now /srv/b
        core.start_now("via-link", T0 + 5)


def test_each_decision_resolves_one_path_however_many_tasks_there_are():
    fs = FakeFilesystem()
    tasks = [task(f"t{i}", "0 0 1 1 *", localdir=f"/srv/m{i}") for i in range(2000)]
    tasks.append(task("due", "0 1 * * *", localdir="/srv/due"))
    core = SchedulingCore(tasks, GeneralSettings(), ZONE, T0, resolve_path=fs)
    assert fs.calls == []  # nothing is resolved before a run is decided
    for i in range(5):
        core.start_now(f"t{i}", T0)
    assert fs.calls == [f"/srv/m{i}" for i in range(5)]
    fs.calls.clear()
    assert [d.action for d in core.due(T0 + HOUR, QUIET)] == [START]
    assert fs.calls == ["/srv/due"]


def test_the_default_resolver_reads_no_disk_but_normalises():
    core = SchedulingCore([task("a", "0 0 1 1 *", localdir="/srv/x/"),
                      task("b", "0 0 1 1 *", localdir="/srv/./x/sub/.."),
                      task("c", "0 0 1 1 *", localdir="/srv/x/y")], GeneralSettings(), ZONE, T0)
    core.start_now("a", T0)
    assert core.writer_of(core.tasks["b"]) == "a" and core.writer_of(core.tasks["c"]) == "a"


def test_a_failing_resolver_falls_back_to_the_normalised_path():
    def broken(path: str) -> str:
        raise PermissionError(13, "Permission denied", path)

    core = SchedulingCore([task("a", "0 0 1 1 *", localdir="/srv/x"),
                      task("b", "0 0 1 1 *", localdir="/srv/x/")],
                     GeneralSettings(), ZONE, T0, resolve_path=broken)
    core.start_now("a", T0)
    with pytest.raises(ValueError, match="a is running and writes the same localdir /srv/x"):
        core.start_now("b", T0)


def test_one_localdir_that_now_resolves_elsewhere_is_shown_with_both_real_paths():
    fs = FakeFilesystem({"/srv/link": "/srv/a"})
    core = SchedulingCore([task("x", "0 0 1 1 *", localdir="/srv/link"),
                      task("y", "0 0 1 1 *", localdir="/srv/link")],
                     GeneralSettings(), ZONE, T0, resolve_path=fs)
    core.start_now("x", T0)
    fs.links["/srv/link"] = "/srv/a/b"
    with pytest.raises(ValueError) as raised:
        core.start_now("y", T0)
    assert str(raised.value) == ("x is running and writes /srv/link (→ /srv/a), which contains "
                                 "the localdir /srv/link (→ /srv/a/b)")


def test_a_run_plans_from_its_history_and_its_end_decides_counters_upstream_and_retry():
    from mirror.core import NextStage, RunEnd
    from mirror.history import RunResult, TaskHistory
    from mirror.runs import Ending, RunKind

    histories = {"m": TaskHistory(upstream_index=3, consecutive_failures=2, failures_total=5)}
    mirrors = ("a.example", "b.example")
    options = RsyncOptions(command="/usr/bin/rsync", rsyncdir="/", twostage=True,
                           firststage="pool")
    core = SchedulingCore([task("m", "0 * * * *", options=options, upstreams=mirrors,
                                localdir="/srv/m", autoretry=600)],
                          GeneralSettings(logdir="/logs"), ZONE, T0, histories=histories)
    core.start_now("m", T0)
    run = core.run_started("m", RunKind.MANUAL, T0)
    assert (run.upstream, run.upstream_index, run.stages) == ("b.example", 1, 2)
    assert run.log_path == "/logs/m.log.2026-07-01"
    with pytest.raises(KeyError):
        core.run_started("m", RunKind.MANUAL, T0)  # begun already
    decision = core.stage_ended("m", 0, T0 + 10)
    assert isinstance(decision, NextStage) and decision.run.stage == 2
    end = core.stage_ended("m", 23, T0 + 20)
    assert isinstance(end, RunEnd) and end.result is RunResult.FAILED
    assert (end.previous_failures, end.consecutive_failures, end.failures_total) == (2, 3, 6)
    assert (end.upstream_index, end.retry_at, end.duration, end.forget) == (0, T0 + 620, 20, False)
    assert "m" not in core.running

    histories["m"] = TaskHistory(upstream_index=0, consecutive_failures=3, failures_total=6)
    core.start_now("m", T0 + 30)
    core.run_started("m", RunKind.MANUAL, T0 + 30)
    assert core.end_requested("m", Ending.CANCELLED) is not None
    core.end_requested("m", Ending.TIMEOUT)  # the first reason stays
    end = core.stage_ended("m", None, T0 + 40)
    assert end.result is RunResult.CANCELLED and end.retry_at is None
    assert (end.consecutive_failures, end.failures_total, end.upstream_index) == (3, 6, 0)
    assert core.queue.get(RETRY, "m") is None  # the earlier retry went with the new run

    core.start_now("m", T0 + 50)
    core.run_started("m", RunKind.MANUAL, T0 + 50)
    assert core.stage_not_started("m", T0 + 51).result is RunResult.FAILED


def test_a_system_entry_is_queued_again_by_the_core_when_due():
    core = SchedulingCore([], GeneralSettings(), ZONE, T0)
    core.add_system_entry("logclean", CronSchedule.parse("30 3 * * *"), 1, T0)
    assert [(entry.name, entry.due) for entry in core.entries()] == [("logclean", T0 + 3.5 * HOUR)]
    [decision] = list(core.due(T0 + 3.5 * HOUR, QUIET))
    assert decision.action == SYSTEM_DUE and decision.system.schedule.expression == "30 3 * * *"
    assert [entry.due for entry in core.entries()] == [T0 + 27.5 * HOUR]
