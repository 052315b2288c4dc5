# SPDX-License-Identifier: GPL-3.0-or-later
"""The core's rules for issue 12: interval schedules, randomdelay, hooks, the checkfile stage
and stalls, with a simulated clock and no processes."""
from __future__ import annotations

from zoneinfo import ZoneInfo

from mirror.core import START, NextStage, RunEnd, SchedulingCore
from mirror.cron import CronSchedule
from mirror.history import RunResult, TaskHistory
from mirror.interval import IntervalSchedule, spread_offset
from mirror.kinds.rsync import RsyncOptions
from mirror.kinds.simple import SimpleOptions
from mirror.policy import Conditions
from mirror.runenv import EXIT_CODE_VARIABLE, HOOK_VARIABLE, RESULT_VARIABLE
from mirror.runs import Ending, RunKind
from mirror.task import GeneralSettings, Hooks, StageRole, TaskSpec
from mirror.taskqueue import RETRY, RUN

ZONE = ZoneInfo("UTC")
T0 = 1_780_000_000.0 - 1_780_000_000.0 % 3600  # on the hour
HOUR = 3600


def interval_task(name: str = "i", seconds: int = 6 * HOUR, **overrides) -> TaskSpec:
    schedule = IntervalSchedule(seconds)
    values = dict(name=name, enabled=True, time=schedule.expression, schedule=schedule,
                  options=SimpleOptions(command="/bin/true"))
    values.update(overrides)
    return TaskSpec(**values)


def cron_task(name: str = "c", time: str = "0 */6 * * *", **overrides) -> TaskSpec:
    values = dict(name=name, enabled=True, time=time, schedule=CronSchedule.parse(time),
                  options=SimpleOptions(command="/bin/true"))
    values.update(overrides)
    return TaskSpec(**values)


def rsync_task(name: str = "r", **overrides) -> TaskSpec:
    options = RsyncOptions(command="/usr/bin/rsync", rsyncdir="debian", args=("-a",),
                           checkfile="project/trace/master")
    return cron_task(name, options=options, upstreams=("mirror.example.org",),
                     localdir="/srv/r", **overrides)


def start(core: SchedulingCore, now: float) -> list:
    return [decision for decision in core.due(now, Conditions())]


# --- interval -------------------------------------------------------------------------


def test_an_interval_task_runs_at_once_then_an_interval_after_each_end():
    core = SchedulingCore([interval_task()], GeneralSettings(), ZONE, T0)
    assert core.next_run("i") == T0
    [decision] = start(core, T0)
    assert decision.action is START and decision.next_due is None
    assert core.next_run("i") is None  # queued when the run ends, not before
    core.run_started("i", RunKind.RUN, T0)
    end = core.stage_ended("i", 0, T0 + 2 * HOUR)
    assert isinstance(end, RunEnd) and end.result is RunResult.SUCCESS
    assert core.next_run("i") == T0 + 8 * HOUR


def test_an_interval_task_counts_from_the_recorded_end_after_a_restart():
    history = {"i": TaskHistory(last_end=T0 - HOUR, result=RunResult.SUCCESS)}
    core = SchedulingCore([interval_task()], GeneralSettings(), ZONE, T0, histories=history)
    assert core.next_run("i") == T0 + 5 * HOUR
    overdue = {"i": TaskHistory(last_end=T0 - 7 * HOUR, result=RunResult.SUCCESS)}
    core = SchedulingCore([interval_task()], GeneralSettings(), ZONE, T0, histories=overdue)
    assert core.next_run("i") == T0 - HOUR  # already due: it starts at once


def test_an_interval_task_failing_is_retried_and_its_interval_still_counts_from_the_end():
    core = SchedulingCore([interval_task(autoretry=600)], GeneralSettings(), ZONE, T0)
    start(core, T0)
    core.run_started("i", RunKind.RUN, T0)
    end = core.stage_ended("i", 1, T0 + 60)
    assert end.result is RunResult.FAILED and end.retry_at == T0 + 660
    assert core.queue.get(RETRY, "i").due == T0 + 660
    assert core.next_run("i") == T0 + 60 + 6 * HOUR


def test_a_reload_keeps_a_running_interval_task_from_queuing_a_second_run():
    task = interval_task()
    core = SchedulingCore([task], GeneralSettings(), ZONE, T0)
    start(core, T0)
    core.run_started("i", RunKind.RUN, T0)
    core.reload([task], GeneralSettings(), T0 + 60)
    assert core.next_run("i") is None
    core.reload([interval_task(seconds=HOUR)], GeneralSettings(), T0 + 120)
    core.stage_ended("i", 0, T0 + 600)
    assert core.next_run("i") == T0 + 600 + HOUR


def test_interval_runs_move_with_a_clock_step_as_durations_do():
    core = SchedulingCore([interval_task()], GeneralSettings(), ZONE, T0)
    start(core, T0)
    core.run_started("i", RunKind.RUN, T0)
    core.stage_ended("i", 0, T0 + 60)
    core.clock_jumped(3600)
    assert core.next_run("i") == T0 + 60 + 7 * HOUR


# --- randomdelay ----------------------------------------------------------------------


def test_the_spread_offset_is_stable_and_within_range():
    offsets = {name: spread_offset(name, 600) for name in (f"task{i}" for i in range(200))}
    assert all(0 <= offset < 600 for offset in offsets.values())
    assert offsets == {name: spread_offset(name, 600) for name in offsets}
    assert len(set(offsets.values())) > 150  # spread, not bunched
    assert spread_offset("debian", 0) == 0
    # the same on every host and every version: the first 64 bits of SHA-256("debian")
    assert spread_offset("debian", 3600) == 2949
    assert spread_offset("debian", 600) == 0x81D93757457F9885 % 600 == 549


def test_a_cron_task_with_a_spread_runs_that_long_after_each_slot():
    core = SchedulingCore([cron_task(spread=137)], GeneralSettings(), ZONE, T0 - 10)
    first = core.next_run("c")
    assert (first - 137) % (6 * HOUR) == 0 and first > T0 - 10
    [decision] = start(core, first)
    assert decision.next_due == first + 6 * HOUR


def test_an_interval_task_with_a_spread_is_delayed_by_it():
    core = SchedulingCore([interval_task(spread=42)], GeneralSettings(), ZONE, T0)
    assert core.next_run("i") == T0 + 42
    start(core, T0 + 42)
    core.run_started("i", RunKind.RUN, T0 + 42)
    core.stage_ended("i", 0, T0 + 100)
    assert core.next_run("i") == T0 + 100 + 6 * HOUR + 42


# --- hooks ----------------------------------------------------------------------------


HOOKS = Hooks(before=("/hooks/before", "-x"), on_success=("/hooks/ok",),
              on_failure=("/hooks/failed",))


def test_the_plan_is_before_hook_then_the_sync_and_the_after_hook_comes_with_the_result():
    core = SchedulingCore([cron_task(hooks=HOOKS)], GeneralSettings(), ZONE, T0)
    core.start_now("c", T0)
    run = core.run_started("c", RunKind.MANUAL, T0)
    assert [stage.role for stage in run.plan] == [StageRole.BEFORE, StageRole.SYNC]
    assert run.current.argv == ("/hooks/before", "-x")
    assert run.current.environ[HOOK_VARIABLE] == "exec_before"
    assert isinstance(core.stage_ended("c", 0, T0 + 1), NextStage)
    after = core.stage_ended("c", 0, T0 + 60)
    assert isinstance(after, NextStage) and run.current.role is StageRole.ON_SUCCESS
    assert run.current.environ[RESULT_VARIABLE] == "success"
    assert run.current.environ[EXIT_CODE_VARIABLE] == "0"
    end = core.stage_ended("c", 0, T0 + 61)
    assert isinstance(end, RunEnd) and end.result is RunResult.SUCCESS and end.exit_code == 0


def test_a_before_hook_exiting_non_zero_vetoes_the_run_without_counting_a_failure():
    core = SchedulingCore([cron_task(hooks=HOOKS, autoretry=600)], GeneralSettings(), ZONE, T0)
    core.start_now("c", T0)
    core.run_started("c", RunKind.MANUAL, T0)
    end = core.stage_ended("c", 3, T0 + 1)
    assert end.result is RunResult.VETOED and end.exit_code == 3
    assert end.consecutive_failures == 0 and end.retry_at is None


def test_a_failing_success_hook_fails_the_run():
    core = SchedulingCore([cron_task(hooks=Hooks(on_success=("/hooks/ok",)))],
                          GeneralSettings(), ZONE, T0)
    core.start_now("c", T0)
    core.run_started("c", RunKind.MANUAL, T0)
    assert isinstance(core.stage_ended("c", 0, T0 + 60), NextStage)
    end = core.stage_ended("c", 2, T0 + 61)
    assert end.result is RunResult.FAILED and end.exit_code == 2
    assert end.consecutive_failures == 1


def test_the_failure_hook_is_told_how_the_sync_failed_and_the_run_ends_as_the_sync_did():
    core = SchedulingCore([cron_task(hooks=HOOKS)], GeneralSettings(), ZONE, T0)
    core.start_now("c", T0)
    run = core.run_started("c", RunKind.MANUAL, T0)
    core.stage_ended("c", 0, T0 + 1)
    assert isinstance(core.stage_ended("c", 23, T0 + 60), NextStage)
    assert run.current.role is StageRole.ON_FAILURE
    assert run.current.environ[RESULT_VARIABLE] == "failed"
    assert run.current.environ[EXIT_CODE_VARIABLE] == "23"
    end = core.stage_ended("c", 0, T0 + 61)  # the hook's own exit does not matter
    assert end.result is RunResult.FAILED and end.exit_code == 23


def test_a_stalled_stage_runs_the_failure_hook_and_ends_stalled():
    core = SchedulingCore([cron_task(hooks=HOOKS)], GeneralSettings(), ZONE, T0)
    core.start_now("c", T0)
    run = core.run_started("c", RunKind.MANUAL, T0)
    core.stage_ended("c", 0, T0 + 1)
    core.end_requested("c", Ending.STALLED)
    assert isinstance(core.stage_ended("c", None, T0 + 60), NextStage)
    assert run.current.environ[RESULT_VARIABLE] == "stalled"
    end = core.stage_ended("c", 0, T0 + 61)
    assert end.result is RunResult.STALLED and end.result.went_wrong


def test_a_run_stalled_in_its_failure_hook_keeps_the_syncs_exit_code():
    core = SchedulingCore([cron_task(hooks=HOOKS)], GeneralSettings(), ZONE, T0)
    core.start_now("c", T0)
    core.run_started("c", RunKind.MANUAL, T0)
    core.stage_ended("c", 0, T0 + 1)
    core.stage_ended("c", 23, T0 + 60)  # the sync failed: the failure hook runs
    core.end_requested("c", Ending.STALLED)
    end = core.stage_ended("c", None, T0 + 90)
    assert end.result is RunResult.STALLED and end.exit_code == 23


def test_a_stop_or_a_cancel_overrides_a_stall_and_no_hook_runs():
    for ending in (Ending.KILLED, Ending.CANCELLED, Ending.TIMEOUT):
        core = SchedulingCore([cron_task(hooks=HOOKS)], GeneralSettings(), ZONE, T0)
        core.start_now("c", T0)
        core.run_started("c", RunKind.MANUAL, T0)
        core.stage_ended("c", 0, T0 + 1)
        core.end_requested("c", Ending.STALLED)
        core.end_requested("c", ending)
        assert core.stage_ended("c", None, T0 + 60).result is ending.result


def test_a_failure_hook_follows_the_stage_that_failed():
    options = RsyncOptions(command="/usr/bin/rsync", rsyncdir="debian", twostage=True,
                           firststage="pool")
    task = cron_task("two", options=options, upstreams=("m.example.org",), localdir="/srv/t",
                     hooks=Hooks(on_failure=("/hooks/failed",)))
    core = SchedulingCore([task], GeneralSettings(), ZONE, T0)
    core.start_now("two", T0)
    run = core.run_started("two", RunKind.MANUAL, T0)
    assert isinstance(core.stage_ended("two", 12, T0 + 60), NextStage)
    assert (run.stage, run.stages) == (2, 2)  # stage 1, then the hook; no stage 2
    assert run.current.role is StageRole.ON_FAILURE


def test_a_crash_during_a_check_or_a_failure_hook_is_not_an_upstreams_failure():
    history = {"r": TaskHistory()}
    core = SchedulingCore([rsync_task(hooks=HOOKS)], GeneralSettings(), ZONE, T0,
                          histories=history, checkdir="/c")
    core.start_now("r", T0)
    run = core.run_started("r", RunKind.RETRY, T0)
    core.stage_ended("r", 0, T0 + 1)  # exec_before
    assert run.current.role is StageRole.CHECK
    assert core.run_lost("r", RunResult.UNATTENDED, T0 + 2).result is RunResult.INTERRUPTED
    core.start_now("r", T0 + 10)
    core.run_started("r", RunKind.MANUAL, T0 + 10)
    core.stage_ended("r", 0, T0 + 11)
    core.stage_ended("r", 23, T0 + 20)  # the sync failed: exec_on_failure runs
    end = core.run_lost("r", RunResult.UNATTENDED, T0 + 30)
    assert end.result is RunResult.FAILED  # known before the crash


def test_a_stalled_checkfile_fetch_goes_on_to_the_full_sync():
    core = SchedulingCore([rsync_task()], GeneralSettings(), ZONE, T0, checkdir="/c")
    core.start_now("r", T0)
    run = core.run_started("r", RunKind.RETRY, T0)
    core.end_requested("r", Ending.STALLED)
    assert isinstance(core.stage_ended("r", None, T0 + 60), NextStage)
    assert run.current.role is StageRole.SYNC and run.ending is None


def test_an_interval_task_stopped_or_crashed_mid_run_runs_at_once_on_start():
    for result in (RunResult.KILLED, RunResult.INTERRUPTED):
        history = {"i": TaskHistory(last_end=T0 - HOUR, result=result)}
        core = SchedulingCore([interval_task()], GeneralSettings(), ZONE, T0, histories=history)
        assert core.next_run("i") == T0


def test_a_timed_out_run_runs_no_hook():
    core = SchedulingCore([cron_task(hooks=HOOKS)], GeneralSettings(), ZONE, T0)
    core.start_now("c", T0)
    core.run_started("c", RunKind.MANUAL, T0)
    core.stage_ended("c", 0, T0 + 1)
    core.end_requested("c", Ending.TIMEOUT)
    assert core.stage_ended("c", None, T0 + 60).result is RunResult.TIMEOUT


# --- checkfile ------------------------------------------------------------------------


def test_a_scheduled_run_fetches_the_checkfile_first_and_ends_unchanged_when_it_is():
    history = {"r": TaskHistory(consecutive_failures=2, result=RunResult.FAILED)}
    core = SchedulingCore([rsync_task()], GeneralSettings(), ZONE, T0, histories=history,
                          checkdir="/var/lib/mirror/checkfiles")
    [decision] = start(core, core.next_run("r"))
    run = core.run_started("r", RunKind.RUN, decision.due)
    assert [stage.role for stage in run.plan] == [StageRole.CHECK, StageRole.SYNC]
    argv = run.current.argv
    assert argv[-2:] == ("mirror.example.org::debian/project/trace/master",
                         "/var/lib/mirror/checkfiles/r.fetched")
    assert "--" in argv and "--max-size=1048576" in argv
    end = core.stage_ended("r", 0, decision.due + 1, unchanged=True)
    assert isinstance(end, RunEnd) and end.result is RunResult.UNCHANGED
    assert end.result.fresh and end.consecutive_failures == 0


def test_a_changed_or_unfetched_checkfile_goes_on_to_the_sync():
    core = SchedulingCore([rsync_task()], GeneralSettings(), ZONE, T0,
                          checkdir="/var/lib/mirror/checkfiles")
    for code in (0, 23, None):
        core.start_now("r", T0)
        core.queue.cancel(RUN, "r")
        run = core.run_started("r", RunKind.RETRY, T0)
        assert isinstance(core.stage_ended("r", code, T0 + 1, unchanged=False), NextStage)
        assert run.current.role is StageRole.SYNC
        assert core.stage_ended("r", 0, T0 + 2).result is RunResult.SUCCESS


def test_the_checkfile_fetch_keeps_how_args_reach_the_upstream():
    options = RsyncOptions(command="/usr/bin/rsync", rsyncdir="debian",
                           args=("-a", "--delete", "--port=8873", "-e", "ssh -p 2222",
                                 "--password-file", "/etc/mirror/secret", "-4"),
                           checkfile="project/trace/master")
    task = cron_task("r", options=options, upstreams=("mirror.example.org",), localdir="/srv/r")
    core = SchedulingCore([task], GeneralSettings(), ZONE, T0, checkdir="/c")
    core.start_now("r", T0)
    argv = core.run_started("r", RunKind.RETRY, T0).current.argv
    assert argv[1:9] == ("--port=8873", "-e", "ssh -p 2222", "--password-file",
                         "/etc/mirror/secret", "-4", "--no-motd", "--max-size=1048576")
    assert "-a" not in argv and "--delete" not in argv


def test_an_admins_run_always_syncs():
    core = SchedulingCore([rsync_task()], GeneralSettings(), ZONE, T0,
                          checkdir="/var/lib/mirror/checkfiles")
    core.start_now("r", T0)
    run = core.run_started("r", RunKind.MANUAL, T0)
    assert [stage.role for stage in run.plan] == [StageRole.SYNC]


def test_without_a_checkdir_no_check_stage_is_planned():
    core = SchedulingCore([rsync_task()], GeneralSettings(), ZONE, T0)
    core.start_now("r", T0)
    assert [stage.role for stage in core.run_started("r", RunKind.RETRY, T0).plan] == [
        StageRole.SYNC]
