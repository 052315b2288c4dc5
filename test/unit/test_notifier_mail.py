# SPDX-License-Identifier: GPL-3.0-or-later
"""Notifier's mail text: which runs get a mail, the subject, the log excerpt, the settings."""
from __future__ import annotations

import time
from datetime import timezone
from pathlib import Path

import pytest

from mirror.diagnostics import IssueCollector
from mirror.events import RunFinishedEvent
from mirror.plugins import mailtext
from mirror.plugins.notifier import Notifier, conflicts, parse_port, parse_timeout
from mirror.pluginsettings import PluginSection, validate

START = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def event(**changes: object) -> RunFinishedEvent:
    values: dict[str, object] = dict(
        taskname="debian", kind="run", result="failed", exit_code=23, signal=None,
        started=START, ended=START + 12, duration=12.0, stage=1, stages=1,
        upstream="rsync://ftp.example.org/debian/", log_path="/nonexistent/debian.log",
        previous_failures=0, consecutive_failures=1, retry_at=None)
    values.update(changes)
    return RunFinishedEvent(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("result", "previous", "expected"), [
    ("failed", 0, mailtext.FAILURE), ("timeout", 0, mailtext.FAILURE),
    ("failed", 1, None), ("timeout", 4, None),
    ("success", 1, mailtext.RECOVERY), ("success", 0, None),
    ("cancelled", 0, None), ("cancelled", 3, None), ("killed", 0, None), ("killed", 2, None),
    # A crash is something an admin must hear about: both of its results start a streak.
    ("unattended", 0, mailtext.FAILURE), ("unattended", 2, None),
    ("interrupted", 0, mailtext.FAILURE), ("interrupted", 1, None),
])
def test_only_the_start_and_the_end_of_a_failure_streak_get_a_mail(result, previous, expected):
    assert mailtext.transition(event(result=result, previous_failures=previous)) == expected


@pytest.mark.parametrize(("changes", "kind", "expected"), [
    ({}, mailtext.FAILURE, "debian failed (exit 23)"),
    ({"exit_code": None, "signal": "SIGKILL"}, mailtext.FAILURE, "debian failed (SIGKILL)"),
    ({"exit_code": None}, mailtext.FAILURE, "debian failed (could not start)"),
    ({"result": "timeout", "signal": "SIGTERM"}, mailtext.FAILURE, "debian timed out"),
    ({"result": "success", "exit_code": 0}, mailtext.RECOVERY, "debian recovered"),
    ({"result": "unattended", "exit_code": None}, mailtext.FAILURE,
     "debian ended while unattended"),
    ({"result": "interrupted", "exit_code": None}, mailtext.FAILURE, "debian interrupted"),
])
def test_subject(changes, kind, expected):
    assert mailtext.subject(event(**changes), kind, "box") == f"[mirror box] {expected}"


def test_tail_is_the_last_lines_and_tolerates_bad_bytes(tmp_path: Path):
    log = tmp_path / "log"
    log.write_bytes(b"".join(b"line %d\n" % number for number in range(200)) + b"bad \xff\n")
    tail = mailtext.read_tail(str(log), 50)
    assert tail == [f"line {number}" for number in range(151, 200)] + ["bad \ufffd"]
    log.write_bytes(b"one\ntwo")  # no final newline
    assert mailtext.read_tail(str(log)) == ["one", "two"]
    log.write_bytes(b"")
    assert mailtext.read_tail(str(log)) == []
    with pytest.raises(FileNotFoundError):
        mailtext.read_tail(str(tmp_path / "missing"))


def test_tail_reads_only_the_end_of_a_huge_log(tmp_path: Path):
    log = tmp_path / "log"
    with open(log, "wb") as stream:
        stream.truncate(4 << 30)  # sparse: 4 GiB of NULs without one newline
        stream.seek(0, 2)
        stream.write(b"\nlast words\n")
    began = time.monotonic()
    tail = mailtext.read_tail(str(log))
    assert time.monotonic() - began < 1
    assert tail[-1] == "last words" and tail[0].startswith("[…] \0")
    assert len(tail) == 2 and len(tail[0].encode()) <= mailtext.TAIL_BYTES + 10


def test_the_excerpt_leaves_out_what_later_runs_appended(tmp_path: Path):
    log = tmp_path / "debian.log"
    own = ["=== mirrord 2023-11-14T22:13:20+00:00 start debian stage 1/1 (run): rsync …",
           *(f"file {number}" for number in range(60)),
           "=== mirrord 2023-11-14T22:13:32+00:00 end debian stage 1/1: exit 23 after 12s"]
    later = ["=== mirrord 2023-11-14T22:13:32+00:00 start debian stage 1/1 (retry): rsync …",
             "=== mirrord 2023-11-14T22:13:33+00:00 end debian stage 1/1: exit 0 after 1s"]
    log.write_text("\n".join(own + later) + "\n")
    excerpt = mailtext.log_excerpt(event(log_path=str(log), ended=START + 12.4))
    assert excerpt == own[-50:]
    # A run that never started a process wrote no footer: nothing is cut.
    assert mailtext.log_excerpt(event(log_path=str(log), exit_code=None))[-1] == later[-1]


def test_body_names_everything_an_admin_needs():
    text = mailtext.body(event(retry_at=START + 600), mailtext.FAILURE, None, timezone.utc,
                         ["rsync: link_stat failed"])
    for expected in ("Task:       debian", "Result:     failed", "Exit code:  23",
                     "Upstream:   rsync://ftp.example.org/debian/",
                     "Next retry: 2023-11-14T22:23:20+00:00", "Log:        /nonexistent/debian.log",
                     "The last 1 lines of the log:\n\nrsync: link_stat failed\n"):
        assert expected in text
    text = mailtext.body(event(), mailtext.FAILURE, None, timezone.utc, None, "No such file")
    assert "The log cannot be read: No such file" in text


def test_the_body_of_a_crash_s_mail_says_what_happened_and_that_the_status_is_unknown():
    unattended = mailtext.body(event(result="unattended", exit_code=None, retry_at=START + 600),
                               mailtext.FAILURE, None, timezone.utc, [])
    assert unattended.startswith("debian's sync ended while mirrord was not watching it: ")
    assert "It counts as failed." in unattended and "one when it succeeds again" in unattended
    assert "Exit code:  unknown (its process was not a child of this mirrord)" in unattended
    assert "Next retry: 2023-11-14T22:23:20+00:00" in unattended
    interrupted = mailtext.body(event(result="interrupted", exit_code=None), mailtext.FAILURE,
                                None, timezone.utc, [])
    assert interrupted.startswith("debian's sync was interrupted: mirrord had crashed")
    assert "not counted as a failure, so no recovery mail follows" in interrupted
    assert "Exit code:  unknown (mirrord was not running when it ended)" in interrupted
    assert "could not be started" not in unattended + interrupted


def test_the_excerpt_of_a_crash_s_run_ends_at_the_footer_mirrord_wrote_for_it(tmp_path: Path):
    log = tmp_path / "debian.log"
    own = ["=== mirrord 2023-11-14T22:13:20+00:00 start debian stage 1/1 (run): rsync …",
           "file 1",
           "=== mirrord 2023-11-14T22:13:32+00:00 end debian stage 1/1: interrupted: mirrord "
           "was not running after 12s"]
    retry = ["=== mirrord 2023-11-14T22:13:33+00:00 start debian stage 1/1 (retry): rsync …"]
    log.write_text("\n".join(own + retry) + "\n")
    for result in ("interrupted", "unattended"):
        excerpt = mailtext.log_excerpt(event(log_path=str(log), result=result, exit_code=None,
                                             ended=START + 12.2))
        assert excerpt == own, result


@pytest.mark.parametrize(("key", "text"), [
    ("port", "abc"), ("port", "0"), ("port", "70000"), ("starttls", "maybe"),
    ("timeout", "0"), ("timeout", "soon"), ("from", "nobody"), ("from", "a@b.org c@d.org"),
    ("password_file", "relative/path"), ("host", "two words")])
def test_bad_settings_say_what_is_allowed(key, text):
    setting = next(setting for setting in Notifier.SETTINGS if setting.key == key)
    with pytest.raises(ValueError, match=r"'.*' is not"):
        setting.parse(text)


def test_settings_that_clash():
    assert parse_port("587") == 587 and parse_timeout("2m") == 120
    defaults = {setting.key: setting.default for setting in Notifier.SETTINGS}
    assert conflicts(defaults) == []
    assert conflicts({**defaults, "starttls": True, "ssl": True})[0].startswith(
        "starttls and ssl are both on")
    assert conflicts({**defaults, "user": "mirror"}) == [
        "user and password_file go together; set both to log in, or neither"]


@pytest.mark.parametrize(("starttls", "ssl", "port"), [(False, False, 25), (False, True, 465),
                                                        (True, False, 587)])
def test_default_port_follows_the_kind_of_connection(starttls, ssl, port):
    notifier = Notifier("Notifier")
    notifier.settings = {**{setting.key: setting.default for setting in Notifier.SETTINGS},
                         "starttls": starttls, "ssl": ssl}
    assert notifier.port == port


def test_a_misspelt_key_is_a_warning_with_a_hint():
    issues = IssueCollector("plugin.ini")
    values = validate(Notifier.SETTINGS, PluginSection("notifier", 1, {"prot": "25"},
                                                       {"prot": 2}), issues)
    assert values is not None and values["host"] == "localhost"
    assert "did you mean port?" in str(issues.issues[0])
