# SPDX-License-Identifier: GPL-3.0-or-later
"""What each stage of a run executes (the rsync kind, and the simple kind beside it)."""
from __future__ import annotations

import pytest

from mirror.cron import CronSchedule
from mirror.kinds.rsync import RsyncOptions, check_upstream, rsync_source, stage_argvs
from mirror.kinds.simple import SimpleOptions
from mirror.task import TaskSpec
from mirror.values import parse_words

ARGS = ("--links", "--hard-links", "--times", "--verbose", "--delete", "--recursive")
COMMON = ("name", "enabled", "time", "schedule", "priority", "timeout", "autoretry",
          "upstreams", "localdir", "successcodes")


def spec(**overrides) -> TaskSpec:
    """A task from the flat keys of a section (``type`` picks the options' class)."""
    values = dict(name="debian", type="rsync", enabled=True, time="0 * * * *",
                  schedule=CronSchedule.parse("0 * * * *"), command="/usr/bin/rsync", args=ARGS,
                  exclude=("--exclude", ".~tmp~/"), upstreams=("ftp.example.org",),
                  rsyncdir="debian/", localdir="/srv/mirror/debian")
    values.update(overrides)
    common = {key: values.pop(key) for key in COMMON if key in values}
    if values.pop("type") == "simple":
        firststage = parse_words(values["firststage"]) if values.get("twostage") else None
        options = SimpleOptions(command=values["command"], args=values["args"],
                                firststage=firststage)
    else:
        options = RsyncOptions(command=values["command"], rsyncdir=values["rsyncdir"],
                               args=values["args"], exclude=values.get("exclude", ()),
                               twostage=values.get("twostage", False),
                               firststage=values.get("firststage"))
    return TaskSpec(options=options, **common)


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


@pytest.mark.parametrize("upstream, part", [
    ("-esh@host", "the user name '-esh' starts with '-'"),
    ("-x@host", "the user name '-x' starts with '-'"),
    ("--rsh=sh@mirror.example.org", "the user name '--rsh=sh' starts with '-'"),
    ("-e", "the host name '-e' starts with '-'"),
    ("--delete", "the host name '--delete' starts with '-'"),
    ("user@-oProxyCommand=x", "the host name '-oProxyCommand=x' starts with '-'"),
    ("rsync://-e@host/m/", "the user name '-e' starts with '-'"),
    ("rsync://-x@host:873/m/", "the user name '-x' starts with '-'"),
    ("rsync://-host/m/", "the host name '-host' starts with '-'"),
    ("rsync://u@-host:873/m/", "the host name '-host' starts with '-'"),
    ("rsync://host/-m/", "'-m' starts with '-'"),
    ("rsync://host/pub/--delete/", "'--delete' starts with '-'"),
])
def test_no_part_of_an_upstream_may_look_like_an_option(upstream, part):
    with pytest.raises(ValueError, match="is not an upstream") as raised:
        check_upstream(upstream)
    assert part in str(raised.value)
    assert "rsync://host/module/ URL" in str(raised.value)  # and says what is allowed


@pytest.mark.parametrize("upstream", [
    "mirror.example.org", "a-b.example.org", "user@host", "user-name@host", "u.s_er@host",
    "[::1]", "user@[2001:db8::1]", "rsync://user@host:873/pub-1/x-y/", "rsync://[::1]/m",
    "/srv/-weird/path",  # a local path starts with "/", so it never reads as an option
])
def test_dashes_inside_names_are_fine(upstream):
    check_upstream(upstream)


@pytest.mark.parametrize("upstream", [
    "ftp.example.org", "user@ftp.example.org", "rsync://127.0.0.1:8873/mod/", "/srv/upstream"])
def test_source_and_destination_follow_a_double_dash_in_every_rsync_stage(upstream):
    single = stage_argvs(spec(upstreams=(upstream,)))
    double = stage_argvs(spec(upstreams=(upstream,), twostage=True, firststage="pool"))
    for argv in single + double:
        assert argv[-3] == "--" and argv.count("--") == 1
        assert not argv[-2].startswith("-") and argv[-1].startswith("/")


def test_rsyncdir_and_firststage_only_ever_follow_the_upstream_and_localdir():
    # Even unchecked values cannot start an argv word: the source begins with the upstream,
    # the destination with the absolute localdir, and both come after "--".
    task = spec(rsyncdir="-e sh/", twostage=True, firststage="--rsh=x")
    stage1, stage2 = stage_argvs(task)
    assert stage1[-3:] == ["--", "ftp.example.org::-e sh/--rsh=x/",
                           "/srv/mirror/debian/--rsh=x"]
    assert stage2[-3:] == ["--", "ftp.example.org::-e sh/", "/srv/mirror/debian"]
    local = spec(upstreams=("/srv/up",), rsyncdir="/--delete/")
    assert stage_argvs(local)[0][-2:] == ["/srv/up/--delete/", "/srv/mirror/debian"]


def test_single_stage():
    assert stage_argvs(spec()) == [[
        "/usr/bin/rsync", *ARGS, "--exclude", ".~tmp~/", "--", "ftp.example.org::debian/",
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
                      "--recursive", "-av", "--exclude", ".~tmp~/", "--",
                      "ftp.example.org::debian/pool/", "/srv/mirror/debian/pool"]
    assert not any(arg.startswith(("--del", "--max-delete", "--force")) for arg in stage1)
    assert stage2 == ["/usr/bin/rsync", "--links", "--hard-links", "--times", "--verbose",
                      "--delete-after", "--recursive", "--delete-excluded", "--max-delete", "100",
                      "--force", "-av", "--delay-updates", "--exclude", ".~tmp~/", "--",
                      "ftp.example.org::debian/", "/srv/mirror/debian"]


def test_two_stage_turns_every_delete_timing_into_one_delete_after():
    task = spec(twostage=True, firststage="pool",
                args=("-a", "--delete-during", "--del", "--delete-delay", "--delay-updates"))
    _, stage2 = stage_argvs(task)
    assert stage2[:4] == ["/usr/bin/rsync", "-a", "--delete-after", "--delay-updates"]
    assert stage2.count("--delete-after") == 1 and stage2.count("--delay-updates") == 1


def argvs(task: TaskSpec) -> list[list[str]]:
    return [list(stage.argv) for stage in task.stages()]


def test_simple_tasks():
    task = spec(type="simple", command="/bin/sleep", args=("10",), upstreams=(), exclude=())
    assert argvs(task) == [["/bin/sleep", "10"]]
    task = spec(type="simple", command="/bin/sleep", args=("10",), twostage=True,
                firststage="5 'x y'")
    assert argvs(task) == [["/bin/sleep", "5", "x y"], ["/bin/sleep", "10"]]


def test_stages_are_the_argvs_with_nothing_added_to_the_environment():
    task = spec(twostage=True, firststage="pool")
    assert [stage.argv for stage in task.stages(1, "/var/log/x.log")] == [
        tuple(argv) for argv in stage_argvs(task, 1)]
    assert all(stage.environ == {} for stage in task.stages())
    assert task.directories() == ("/srv/mirror/debian",)
    assert spec(type="simple", command="/bin/true", args=()).directories() == ()


def test_rsync_exit_codes_have_rsyncs_words():
    from mirror.kinds import result_message

    assert result_message("rsync", 24) == "Partial transfer due to vanished source files"
    assert result_message("rsync", 99) == "rsync exited with code 99"
    assert result_message("simple", 24) == "Exited with code 24"
    assert result_message("simple", 0) == "Task finished"


def test_success_codes():
    from mirror.task import GeneralSettings

    general = GeneralSettings(successcodes=(23,))
    rsync = spec(successcodes=(30,))
    assert [rsync.succeeded(code, general) for code in (0, 23, 24, 30, 1, None)] == [
        True, True, True, True, False, False]
    simple = spec(type="simple")
    assert simple.succeeded(24, GeneralSettings()) is False
