# SPDX-License-Identifier: GPL-3.0-or-later
"""What each stage of a run executes."""
from __future__ import annotations

import pytest

from mirror.commandline import check_upstream, rsync_source, stage_argvs
from mirror.schedule import CronSchedule
from mirror.task import TaskSpec

ARGS = ("--links", "--hard-links", "--times", "--verbose", "--delete", "--recursive")


def spec(**overrides) -> TaskSpec:
    values = dict(name="debian", type="rsync", enabled=True, time="0 * * * *",
                  schedule=CronSchedule.parse("0 * * * *"), command="/usr/bin/rsync", args=ARGS,
                  exclude=("--exclude", ".~tmp~/"), upstreams=("ftp.example.org",),
                  rsyncdir="debian/", localdir="/srv/mirror/debian")
    values.update(overrides)
    return TaskSpec(**values)


@pytest.mark.parametrize("upstream, source", [
    ("ftp.example.org", "ftp.example.org::debian"),
    ("user@ftp.example.org", "user@ftp.example.org::debian"),
    ("rsync://ftp.example.org/pub/", "rsync://ftp.example.org/pub/debian"),
    ("rsync://127.0.0.1:8873/mod", "rsync://127.0.0.1:8873/mod/debian"),
    ("/srv/upstream", "/srv/upstream/debian"),
])
def test_sources(upstream, source):
    check_upstream(upstream)
    assert rsync_source(upstream, "/debian/") == source


@pytest.mark.parametrize("upstream", ["relative/path", "http://x.org/", "a b", "ftp.example.org::"])
def test_bad_upstreams(upstream):
    with pytest.raises(ValueError, match="is not an upstream"):
        check_upstream(upstream)


def test_single_stage():
    assert stage_argvs(spec()) == [[
        "/usr/bin/rsync", *ARGS, "--exclude", ".~tmp~/", "ftp.example.org::debian/",
        "/srv/mirror/debian"]]


def test_failover_picks_the_next_upstream_and_wraps():
    task = spec(upstreams=("a.example.org", "b.example.org"))
    assert stage_argvs(task, 1)[0][-2] == "b.example.org::debian/"
    assert stage_argvs(task, 2)[0][-2] == "a.example.org::debian/"


def test_two_stage_never_deletes_in_stage_one_and_deletes_after_in_stage_two():
    task = spec(twostage=True, firststage="pool",
                args=(*ARGS, "--delete-excluded", "--max-delete", "100", "--force", "-av"))
    stage1, stage2 = stage_argvs(task)
    assert stage1 == ["/usr/bin/rsync", "--links", "--hard-links", "--times", "--verbose",
                      "--recursive", "-av", "--exclude", ".~tmp~/",
                      "ftp.example.org::debian/pool/", "/srv/mirror/debian/pool"]
    assert not any(arg.startswith(("--del", "--max-delete", "--force")) for arg in stage1)
    assert stage2 == ["/usr/bin/rsync", "--links", "--hard-links", "--times", "--verbose",
                      "--delete-after", "--recursive", "--delete-excluded", "--max-delete", "100",
                      "--force", "-av", "--delay-updates", "--exclude", ".~tmp~/",
                      "ftp.example.org::debian/", "/srv/mirror/debian"]


def test_two_stage_turns_every_delete_timing_into_one_delete_after():
    task = spec(twostage=True, firststage="pool",
                args=("-a", "--delete-during", "--del", "--delete-delay", "--delay-updates"))
    _, stage2 = stage_argvs(task)
    assert stage2[:4] == ["/usr/bin/rsync", "-a", "--delete-after", "--delay-updates"]
    assert stage2.count("--delete-after") == 1 and stage2.count("--delay-updates") == 1


def test_simple_tasks():
    task = spec(type="simple", command="/bin/sleep", args=("10",), upstreams=(), exclude=())
    assert stage_argvs(task) == [["/bin/sleep", "10"]]
    task = spec(type="simple", command="/bin/sleep", args=("10",), twostage=True,
                firststage="5 'x y'")
    assert stage_argvs(task) == [["/bin/sleep", "5", "x y"], ["/bin/sleep", "10"]]


def test_success_codes():
    from mirror.task import GeneralSettings

    general = GeneralSettings(successcodes=(23,))
    rsync = spec(successcodes=(30,))
    assert [rsync.succeeded(code, general) for code in (0, 23, 24, 30, 1, None)] == [
        True, True, True, True, False, False]
    simple = spec(type="simple")
    assert simple.succeeded(24, GeneralSettings()) is False
