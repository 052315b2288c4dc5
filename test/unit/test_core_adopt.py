# SPDX-License-Identifier: GPL-3.0-or-later
"""The scheduling core taking over a run a mirrord before it left (``adopt``), and ending a
run whose exit status is unknown (``run_lost``): what each result does to the counters, the
upstream and the retry."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from mirror.core import SKIP, START, WAIT, SchedulingCore
from mirror.cron import CronSchedule
from mirror.history import RunResult, TaskHistory
from mirror.kinds.simple import SimpleOptions
from mirror.policy import Conditions
from mirror.procident import ProcessIdentity
from mirror.runs import Ending, RunKind, RunRecord
from mirror.task import GeneralSettings, Stage, TaskSpec
from mirror.taskqueue import RETRY, RUN, TIMEOUT

ZONE = ZoneInfo("UTC")
T0 = datetime(2027, 1, 15, 8, 0, tzinfo=ZONE).timestamp()
QUIET = Conditions()
# What the run was started with; the config may say otherwise by now.
PLAN = (Stage(("/bin/sync-stage-1", "--pool"), {"MIRROR_UPSTREAM": "rsync://b/"}),
        Stage(("/bin/sync-stage-2",), {}))


def task(name: str, **overrides: object) -> TaskSpec:
    values: dict[str, object] = dict(
        name=name, enabled=True, time="0 0 1 1 *", schedule=CronSchedule.parse("0 0 1 1 *"),
        options=SimpleOptions(command="/bin/true"))
    values.update(overrides)
    return TaskSpec(**values)  # type: ignore[arg-type]


def record(name: str = "m", **changes: object) -> RunRecord:
    values: dict[str, object] = dict(
        name=name, kind=RunKind.RUN, plan=PLAN, stage=2, upstream="rsync://b/",
        upstream_index=1, started=T0 - 1000, stage_started=T0 - 400,
        log_path=f"/logs/{name}.log.2027-01-15", first_pid=4100,
        identity=ProcessIdentity(pid=4200, start_ticks=99, boot="boot", run_id="abc"),
        ending=None, localdir="/srv/shared", resolved="/srv/shared")
    values.update(changes)
    return RunRecord(**values)  # type: ignore[arg-type]


def make_core(histories: dict[str, TaskHistory] | None = None, **m_settings: object
              ) -> SchedulingCore:
    tasks = [task("m", localdir="/srv/shared", **m_settings),
             task("inner", localdir="/srv/shared/inner"),
             task("apart", localdir="/srv/apart")]
    return SchedulingCore(tasks, GeneralSettings(logdir="/logs"), ZONE, T0,
                          histories=histories if histories is not None else {})


def test_an_adopted_run_is_the_run_it_was():
    core = make_core()
    run = core.adopt(record(), T0)
    assert core.run_of("m") is run and "m" in core.running
    assert (run.stage, run.stages, tuple(run.plan)) == (2, 2, PLAN)
    assert run.current == PLAN[1]  # not the config's stages: what it was planned with
    assert (run.kind, run.upstream, run.upstream_index) == (RunKind.RUN, "rsync://b/", 1)
    assert (run.started, run.stage_started, run.log_path) == (T0 - 1000, T0 - 400,
                                                             "/logs/m.log.2027-01-15")
    assert (run.pid, run.first_pid, run.run_id) == (4200, 4100, "abc")
    assert run.identity == record().identity and run.ending is None
    # What the state file keeps of it is what it was adopted from.
    assert core.record_of(run) == record()


def test_an_adopted_run_holds_its_localdir():
    core = make_core()
    core.adopt(record(), T0)
    assert core.writer_of(core.tasks["inner"]) == "m"  # a directory inside it
    assert core.writer_of(core.tasks["apart"]) is None
    with pytest.raises(ValueError, match="m is running and writes /srv/shared, which "
                                         "contains the localdir /srv/shared/inner"):
        core.start_now("inner", T0)
    with pytest.raises(ValueError, match="m is already running"):
        core.start_now("m", T0)
    core.start_now("apart", T0)  # another directory: not held


def test_a_handed_over_run_holds_its_recorded_directory_even_if_the_config_moved_the_task():
    core = make_core()
    run = core.adopt(record(localdir="/srv/old", resolved="/data/old",
                            log_path="/old-logs/m.log.2027-01-15"), T0, trusted=True)
    # The run writes where it started writing, whatever the task's localdir says now.
    assert core.writer_of(core.tasks["inner"]) is None
    assert core.writer_of(task("x", localdir="/data/old/sub")) == "m"
    assert run.log_path == "/old-logs/m.log.2027-01-15"


def test_an_adopted_orphan_holds_the_configured_directory_and_logs_in_logdir():
    """A record the last image did not hand over may have been written by someone else:
    "/" as its localdir would make every task wait, and its log path could name any file."""
    core = make_core()
    run = core.adopt(record(localdir="/", resolved="/", log_path="/etc/passwd"), T0)
    assert core.writer_of(task("x", localdir="/srv/apart")) is None
    assert core.writer_of(core.tasks["inner"]) == "m"  # /srv/shared, as configured
    assert run.log_path.startswith("/logs/m.log.")


def test_a_task_due_while_its_directory_is_held_waits_and_starts_when_the_run_is_lost():
    core = make_core()
    core.adopt(record(), T0)
    core.queue.push(T0 + 10, 1, RUN, "inner")
    core.queue.push(T0 + 10, 1, RUN, "m")
    decisions = {decision.name: decision.action for decision in core.due(T0 + 10, QUIET)}
    assert decisions == {"inner": WAIT, "m": SKIP}
    core.run_lost("m", RunResult.INTERRUPTED, T0 + 20)
    assert [(decision.name, decision.action) for decision in core.due(T0 + 20, QUIET)] == [
        ("inner", START)]


def test_the_timeout_counts_from_the_original_start():
    core = make_core(timeout=3600)
    core.adopt(record(), T0)
    entry = core.queue.get(TIMEOUT, "m")
    assert entry is not None and entry.due == T0 - 1000 + 3600
    assert core.seconds_until_next(T0) == 2600  # the loop wakes for it
    # A timeout that passed while no mirrord ran expires at once.
    late = make_core(timeout=600)
    late.adopt(record(), T0)
    [decision] = list(late.due(T0, QUIET))
    assert (decision.name, decision.kind, decision.due) == ("m", TIMEOUT, T0 - 400)
    assert make_core().queue.get(TIMEOUT, "m") is None  # no timeout, no entry


def test_adopting_cancels_a_pending_retry():
    core = make_core(autoretry=600)
    core.queue.push(T0 + 60, 1, RETRY, "m")
    core.adopt(record(), T0)
    assert core.queue.get(RETRY, "m") is None


def test_an_unknown_task_or_one_already_running_is_not_adopted():
    core = make_core()
    with pytest.raises(KeyError):
        core.adopt(record("removed"), T0)
    assert "removed" not in core.running and not core.runs()
    core.adopt(record(), T0)
    with pytest.raises(KeyError):
        core.adopt(record(), T0)
    with pytest.raises(KeyError):
        core.run_lost("inner", RunResult.INTERRUPTED, T0)  # not running


def history() -> dict[str, TaskHistory]:
    return {"m": TaskHistory(upstream_index=1, consecutive_failures=2, failures_total=5)}


def failover_core(histories: dict[str, TaskHistory]) -> SchedulingCore:
    return make_core(histories, autoretry=600, timeout=7200,
                     upstreams=("rsync://a/", "rsync://b/", "rsync://c/"))


def test_an_interrupted_run_is_retried_but_not_counted_and_does_not_fail_over():
    histories = history()
    core = failover_core(histories)
    core.adopt(record(), T0)
    end = core.run_lost("m", RunResult.INTERRUPTED, T0 + 30)
    assert end.result is RunResult.INTERRUPTED and end.exit_code is None
    assert (end.previous_failures, end.consecutive_failures, end.failures_total) == (2, 2, 5)
    assert end.upstream_index == 1  # the same upstream again
    assert end.retry_at == T0 + 630 and core.queue.get(RETRY, "m").due == T0 + 630
    assert (end.ended, end.duration, end.forget) == (T0 + 30, 1030, False)
    assert "m" not in core.running and core.queue.get(TIMEOUT, "m") is None
    assert core.writer_of(core.tasks["inner"]) is None  # the directory is free again


def test_an_unattended_end_counts_as_a_failure_and_fails_over():
    histories = history()
    core = failover_core(histories)
    core.adopt(record(), T0)
    end = core.run_lost("m", RunResult.UNATTENDED, T0 + 30)
    assert end.result is RunResult.UNATTENDED and end.exit_code is None
    assert (end.previous_failures, end.consecutive_failures, end.failures_total) == (2, 3, 6)
    assert end.upstream_index == 2  # b failed (or may have): c next
    assert end.retry_at == T0 + 630 and core.queue.get(RETRY, "m") is not None
    assert "m" not in core.running and core.writer_of(core.tasks["inner"]) is None


def test_without_autoretry_neither_result_queues_a_retry():
    for result in (RunResult.INTERRUPTED, RunResult.UNATTENDED):
        core = make_core(history())
        core.adopt(record(), T0)
        assert core.run_lost("m", result, T0 + 30).retry_at is None
        assert core.queue.get(RETRY, "m") is None


@pytest.mark.parametrize("ending", list(Ending))
@pytest.mark.parametrize("lost", [RunResult.INTERRUPTED, RunResult.UNATTENDED])
def test_a_run_that_was_being_ended_has_the_ending_s_result(ending, lost):
    histories = history()
    core = failover_core(histories)
    core.adopt(record(ending=ending), T0)
    end = core.run_lost("m", lost, T0 + 30)
    assert end.result is ending.result
    # a timeout or a stall is a failure; cancel and stop are not
    counted = ending in (Ending.TIMEOUT, Ending.STALLED)
    assert end.consecutive_failures == (3 if counted else 2)
    assert end.upstream_index == (2 if counted else 1)
    assert (end.retry_at is not None) == counted


def test_an_ending_asked_for_after_adoption_wins_too():
    core = failover_core(history())
    core.adopt(record(), T0)
    assert core.end_requested("m", Ending.CANCELLED) is not None
    end = core.run_lost("m", RunResult.UNATTENDED, T0 + 30)
    assert end.result is RunResult.CANCELLED and end.retry_at is None
    assert (end.consecutive_failures, end.failures_total) == (2, 5)


def test_a_retry_an_earlier_mirrord_had_queued_is_queued_again_from_the_history():
    """A retry lives only in the queue: a restart (or a crash) must not drop it."""
    retrying = task("m", autoretry=600)

    def core_with(history: TaskHistory) -> SchedulingCore:
        return SchedulingCore([retrying], GeneralSettings(logdir="/logs"), ZONE, T0,
                              histories={"m": history})

    retry = core_with(TaskHistory(result=RunResult.FAILED, last_end=T0 - 60)).queue.get(
        RETRY, "m")
    assert retry is not None and retry.due == T0 - 60 + 600
    overdue = core_with(TaskHistory(result=RunResult.INTERRUPTED, last_end=T0 - 7200))
    assert overdue.queue.get(RETRY, "m").due == T0  # at once
    for result in (RunResult.SUCCESS, RunResult.CANCELLED, RunResult.KILLED):
        assert core_with(TaskHistory(result=result, last_end=T0 - 60)).queue.get(
            RETRY, "m") is None
    no_autoretry = SchedulingCore([task("m")], GeneralSettings(logdir="/logs"), ZONE, T0,
                                  histories={"m": TaskHistory(result=RunResult.FAILED,
                                                              last_end=T0 - 60)})
    assert no_autoretry.queue.get(RETRY, "m") is None
