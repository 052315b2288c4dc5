# SPDX-License-Identifier: GPL-3.0-or-later
"""A run's record in the state file: written, read back, and hostile input refused.

The state file is not trusted when it is read back: every value of a record is checked, and a
record that is wrong in any way is refused with a ValueError that names the key, so that the
daemon logs it and starts without taking the run over (it never guesses).
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from mirror.history import HistoryStore, TaskHistory
from mirror.procident import ProcessIdentity
from mirror.runs import Ending, RunKind, RunRecord
from mirror.task import Stage

RECORD = RunRecord(
    name="debian", kind=RunKind.RETRY,
    plan=(Stage(("/usr/bin/rsync", "-a", "pool/"), {"MIRROR_UPSTREAM": "rsync://a/"}),
          Stage(("/usr/bin/rsync", "-a", "--delete-after"), {})),
    stage=2, upstream="rsync://a/", upstream_index=1, started=1_800_000_000.5,
    stage_started=1_800_000_060.0, log_path="/var/log/mirror/debian.log.2027-01-15",
    first_pid=4242, identity=ProcessIdentity(pid=4300, start_ticks=123456,
                                             boot="0d5f-boot", run_id="c0ffee00c0ffee00"),
    ending=Ending.TIMEOUT, localdir="/srv/debian", resolved="/data/debian")


def good() -> dict[str, Any]:
    """A valid record as the state file holds it (through JSON, as it is read back)."""
    return json.loads(json.dumps(RECORD.to_dict()))


def test_a_record_survives_json_unchanged():
    assert RunRecord.from_dict("debian", good()) == RECORD
    bare = RunRecord(**{**vars(RECORD), "upstream": None, "ending": None, "localdir": None,
                        "resolved": None, "stage": 1})
    assert RunRecord.from_dict("debian", json.loads(json.dumps(bare.to_dict()))) == bare
    # An integer time (as another writer may give it) reads as a float.
    data = good()
    data["started"] = 1_800_000_000
    assert RunRecord.from_dict("debian", data).started == 1_800_000_000.0


def test_a_stage_without_environ_has_an_empty_one():
    data = good()
    del data["plan"][1]["environ"]
    assert RunRecord.from_dict("debian", data).plan[1].environ == {}


REQUIRED = ("kind", "plan", "stage", "upstream_index", "started", "stage_started", "log_path",
            "first_pid", "pid", "start_ticks", "boot", "run_id")


@pytest.mark.parametrize("key", REQUIRED)
def test_a_missing_key_is_named(key):
    data = good()
    del data[key]
    with pytest.raises(ValueError, match=f"'{key}' is missing or not a"):
        RunRecord.from_dict("debian", data)


@pytest.mark.parametrize(("key", "wrong"), [
    ("kind", 1), ("plan", {"argv": ["x"]}), ("stage", "2"), ("stage", 2.0),
    ("upstream", 5), ("upstream_index", None), ("started", "now"), ("stage_started", [1]),
    ("log_path", None), ("first_pid", 1.5), ("pid", "4300"), ("start_ticks", 1.0),
    ("boot", 0), ("run_id", ["c0ffee"]), ("ending", 3), ("localdir", {}), ("resolved", 7),
])
def test_a_value_of_the_wrong_type_is_named(key, wrong):
    data = good()
    data[key] = wrong
    with pytest.raises(ValueError, match=f"'{key}' is missing or not a"):
        RunRecord.from_dict("debian", data)


@pytest.mark.parametrize("key", ["stage", "upstream_index", "first_pid", "pid", "start_ticks",
                                 "started", "stage_started"])
def test_a_boolean_is_not_a_number(key):
    data = good()
    data[key] = True  # isinstance(True, int): a check by type alone would take it for 1
    with pytest.raises(ValueError, match=f"'{key}' is missing or not a"):
        RunRecord.from_dict("debian", data)


@pytest.mark.parametrize("stage", [0, 3, -1])
def test_a_stage_outside_the_plan_is_refused(stage):
    data = good()
    data["stage"] = stage
    with pytest.raises(ValueError, match=f"'stage' {stage} is not one of the plan's stages"):
        RunRecord.from_dict("debian", data)
    data["plan"], data["stage"] = [], 1
    with pytest.raises(ValueError, match="'stage' 1 is not one of the plan's stages"):
        RunRecord.from_dict("debian", data)


@pytest.mark.parametrize("pid", [1, 0, -1, -4300])
def test_init_and_process_groups_are_not_a_run_s_process(pid):
    # 0 and negative numbers would signal mirrord's own group, or every process, and pid 1
    # is init: none of them can be a run's process.
    data = good()
    data["pid"] = pid
    with pytest.raises(ValueError, match=f"'pid' {pid} is not a process a run can have"):
        RunRecord.from_dict("debian", data)


@pytest.mark.parametrize(("key", "text", "words"), [
    ("kind", "cron", "run, retry, manual"), ("kind", "", "run, retry, manual"),
    ("ending", "stopped", "timeout, cancelled, killed"), ("ending", "TIMEOUT", "timeout"),
])
def test_an_unknown_word_is_named_with_the_known_ones(key, text, words):
    data = good()
    data[key] = text
    with pytest.raises(ValueError, match=f"'{key}' is not one of {words}"):
        RunRecord.from_dict("debian", data)


@pytest.mark.parametrize(("argv", "environ", "message"), [
    (["rsync", 1], {}, "a stage's 'argv' is not a list of strings"),
    ([], {}, "a stage's 'argv' is not a list of strings"),
    ("rsync -a", {}, "a stage's 'argv' is not a list of strings"),
    ([b"rsync"], {}, "a stage's 'argv' is not a list of strings"),
    (["rsync"], {"A": 1}, "a stage's 'environ' is not an object of strings"),
    (["rsync"], ["A=1"], "a stage's 'environ' is not an object of strings"),
])
def test_a_stage_that_is_not_argv_and_environment_is_refused(argv, environ, message):
    data = good()
    data["plan"][0] = {"argv": argv, "environ": environ}
    with pytest.raises(ValueError, match=message):
        RunRecord.from_dict("debian", data)
    data["plan"][0] = ["rsync"]
    with pytest.raises(ValueError, match="'plan' holds something that is not a stage"):
        RunRecord.from_dict("debian", data)


@pytest.mark.parametrize("key", ["started", "stage_started"])
@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf"), 10 ** 400])
def test_a_time_that_is_not_finite_is_refused(key, number):
    # 10**400 made float() raise OverflowError, which is not a ValueError: the daemon's start
    # would have failed on it. NaN would have put an unordered entry in the queue.
    data = good()
    data[key] = number
    with pytest.raises(ValueError, match=f"'{key}' is not a time"):
        RunRecord.from_dict("debian", data)


def deep(levels: int, leaf: object = "x") -> object:
    for _ in range(levels):
        leaf = [leaf]
    return leaf


@pytest.mark.parametrize(("key", "message"), [
    ("plan", "'plan' holds something that is not a stage"), ("pid", "'pid' is missing"),
    ("log_path", "'log_path' is missing"), ("localdir", "'localdir' is missing"),
])
def test_deep_nesting_is_refused_without_recursing(key, message):
    data = good()
    data[key] = deep(100_000)  # from_dict never walks into what it does not expect
    with pytest.raises(ValueError, match=message):
        RunRecord.from_dict("debian", data)
    data = good()
    data["plan"][0] = {"argv": ["rsync"], "environ": {"A": deep(100_000)}}
    with pytest.raises(ValueError, match="'environ'"):
        RunRecord.from_dict("debian", data)


# --- the state file ---------------------------------------------------------------------

def test_the_state_file_keeps_histories_and_runs(tmp_path):
    store = HistoryStore(str(tmp_path / "state.json"))
    histories = {"debian": TaskHistory(last_start=1.0, result="interrupted", stage=2)}
    store.save(histories, {"debian": RECORD.to_dict()})
    saved = store.load_all()
    assert saved.histories == histories and saved.histories["debian"].result == "interrupted"
    assert RunRecord.from_dict("debian", saved.runs["debian"]) == RECORD
    assert store.load() == histories
    store.save(histories)  # no run in progress
    assert store.load_all().runs == {}
    assert json.loads((tmp_path / "state.json").read_text())["runs"] == {}


@pytest.mark.parametrize("runs", ['"debian"', "[1, 2]", "3", "null", "true"])
def test_runs_that_are_not_an_object_are_no_runs_and_the_history_stays(tmp_path, runs):
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "tasks": {"debian": {"result": "success", "stage": 1}}, '
                    f'"runs": {runs}}}')
    saved = HistoryStore(str(path)).load_all()
    assert saved.runs == {}
    assert saved.histories == {"debian": TaskHistory(result="success", stage=1)}
    assert path.exists() and not list(tmp_path.glob("*.damaged-*"))  # not set aside


def test_records_that_are_not_objects_are_left_out(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 1, "tasks": {}, "runs": {
        "debian": RECORD.to_dict(), "ubuntu": [1], "arch": "x", "gentoo": None}}))
    assert list(HistoryStore(str(path)).load_all().runs) == ["debian"]


def test_a_state_file_nested_too_deep_is_set_aside(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "tasks": {}, "runs": {"debian": '
                    + "[" * 200_000 + "]" * 200_000 + "}}")
    saved = HistoryStore(str(path)).load_all()
    assert (saved.histories, saved.runs) == ({}, {})
    assert len(list(tmp_path.glob("state.json.damaged-*"))) == 1
