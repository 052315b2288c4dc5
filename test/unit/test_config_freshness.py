# SPDX-License-Identifier: GPL-3.0-or-later
"""The keys of issue 12 in mirror.ini: interval, randomdelay, hooks, checkfile, trace,
contimeout, iotimeout, and [general]'s defaults; every mistake located."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mirror.check import check_report
from mirror.config import load_config, with_run_advice
from mirror.interval import IntervalSchedule, spread_offset
from mirror.locations import locate_config

BASE = """[general]
logdir = logs
{general}
[debian]
upstream[] = ftp.example.org
rsyncdir = debian/
localdir = /srv/mirror/debian
{task}
"""


def load(tmp_path: Path, task: str, general: str = ""):
    path = tmp_path / "mirror.ini"
    path.write_text(BASE.format(task=task, general=general), encoding="utf-8")
    return load_config(locate_config(str(path)))


def errors(config) -> list[str]:
    return [str(issue) for issue in config.errors]


def test_interval_replaces_time_and_is_shown_as_every(tmp_path):
    config = load(tmp_path, "interval = 6h")
    assert errors(config) == []
    [task] = config.tasks
    assert task.schedule == IntervalSchedule(6 * 3600) and task.time == "every 6h"


def test_time_and_interval_together_is_an_error_at_interval(tmp_path):
    config = load(tmp_path, "time = 0 * * * *\ninterval = 6h")
    assert config.tasks == ()
    [message] = errors(config)
    assert "mirror.ini:9: [debian] interval:" in message and "not both" in message


def test_neither_time_nor_interval_names_both(tmp_path):
    [message] = errors(load(tmp_path, ""))
    assert "[debian] time:" in message and "interval" in message


@pytest.mark.parametrize("value, fragment", [("30s", "shorter than a minute"),
                                             ("often", "not a duration")])
def test_a_bad_interval_says_what_is_allowed(tmp_path, value, fragment):
    [message] = errors(load(tmp_path, f"interval = {value}"))
    assert "[debian] interval:" in message and fragment in message


def test_randomdelay_of_the_task_or_of_general(tmp_path):
    own = load(tmp_path, "time = 0 */6 * * *\nrandomdelay = 10m", "randomdelay = 1h")
    assert own.tasks[0].spread == spread_offset("debian", 600)
    inherited = load(tmp_path, "time = 0 */6 * * *", "randomdelay = 1h")
    assert inherited.tasks[0].spread == spread_offset("debian", 3600)
    off = load(tmp_path, "time = 0 */6 * * *\nrandomdelay = 0", "randomdelay = 1h")
    assert off.tasks[0].spread == 0


def test_hooks_resolve_their_command_and_inherit_from_general(tmp_path):
    hook = tmp_path / "notify.sh"
    hook.write_text("#!/bin/sh\n")
    hook.chmod(0o755)
    config = load(tmp_path, "time = 0 * * * *\nexec_on_success = ./notify.sh 'a b'\n"
                            "exec_on_failure =",
                  "exec_before = true\nexec_on_failure = ./notify.sh failed")
    assert errors(config) == []
    hooks = config.tasks[0].hooks
    assert hooks.on_success == (str(hook), "a b")
    assert hooks.before[0].endswith("/true") and os.path.isabs(hooks.before[0])
    assert hooks.on_failure == ()  # set empty: none, not [general]'s
    report = check_report(config, datetime.now(timezone.utc), timezone.utc)
    assert report["tasks"][0]["hooks"]["exec_on_success"] == [str(hook), "a b"]


def test_a_hook_that_cannot_run_is_an_error_where_it_is_set(tmp_path):
    config = load(tmp_path, "time = 0 * * * *\nexec_before = no-such-command-here",
                  "exec_on_success = /nonexistent/hook")
    found = errors(config)
    assert any("[general] exec_on_success:" in message and "not an executable" in message
               for message in found)
    assert any("[debian] exec_before:" in message and "not found on PATH" in message
               for message in found)


@pytest.mark.parametrize("value, fragment", [
    ("../etc/passwd", "without '..'"), ("/project/trace/master", "relative path"),
    ("project/trace/", "is a directory"), ("-x", "'-'")])
def test_checkfile_is_a_file_inside_rsyncdir(tmp_path, value, fragment):
    [message] = errors(load(tmp_path, f"time = 0 * * * *\ncheckfile = {value}"))
    assert "[debian] checkfile:" in message and fragment in message


def test_trace_and_contimeout_reach_the_argv(tmp_path):
    config = load(tmp_path, "time = 0 * * * *\ntrace = 1\ncontimeout = 30",
                  "tracehost = mirror.example.net\nmaintainer = Admins <a@example.org>")
    assert errors(config) == []
    [argv] = [list(stage.argv) for stage in config.tasks[0].stages()]
    assert "--contimeout=30" in argv
    assert "--filter=protect /project/trace/mirror.example.net" in argv
    assert "--filter=protect /project/trace/_traces" in argv
    assert argv.index("--contimeout=30") < argv.index("--")


def test_without_the_new_keys_the_argv_is_0_8_4s(tmp_path):
    config = load(tmp_path, "time = 0 * * * *")
    [argv] = [list(stage.argv) for stage in config.tasks[0].stages()]
    assert argv[1:] == ["--links", "--hard-links", "--times", "--verbose", "--delete",
                        "--recursive", "--stats", "--", "ftp.example.org::debian/",
                        "/srv/mirror/debian"]


@pytest.mark.parametrize("general, fragment", [
    ("tracehost = ../../etc", "not a host name"),
    ("tracehost = a/b", "not a host name"),
])
def test_tracehost_is_never_a_path(tmp_path, general, fragment):
    [message] = errors(load(tmp_path, "time = 0 * * * *", general))
    assert "[general] tracehost:" in message and fragment in message


def test_check_warns_for_a_task_with_neither_timeout_nor_iotimeout(tmp_path):
    bare = with_run_advice(load(tmp_path, "time = 0 * * * *"))
    assert any("neither timeout nor iotimeout" in str(issue) for issue in bare.warnings)
    for key in ("timeout = 12h", "iotimeout = 30m"):
        covered = with_run_advice(load(tmp_path, f"time = 0 * * * *\n{key}"))
        assert not any("neither timeout" in str(issue) for issue in covered.warnings)
