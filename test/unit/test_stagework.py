# SPDX-License-Identifier: GPL-3.0-or-later
"""The pieces around a run's stages: the iotimeout watch, the trace file, the checkfile
copies, and a run record's roles and outcome."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from mirror import checkfiles
from mirror.checkfiles import Fetched
from mirror.history import RunResult
from mirror.procident import ProcessIdentity
from mirror.progress import PROGRESS_BYTES, ProgressWatch, tree_io
from mirror.runs import Run, RunKind, RunRecord
from mirror.safeopen import UnsafePath
from mirror.stagework import StageWork
from mirror.task import GeneralSettings, Stage, StageRole
from mirror.tracefile import (
    TraceFacts,
    archive_serial,
    bytes_received,
    date_line,
    trace_text,
    upstream_host,
    write_trace,
)

# --- iotimeout ------------------------------------------------------------------------


class Samples:
    """A tree's bytes per process; CPU time only where a test sets ``ticks``."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {1: 0}
        self.ticks: dict[int, int] = {}

    def __call__(self, pid: int) -> dict[int, tuple[int, int]]:
        return {pid: (count, self.ticks.get(pid, 0)) for pid, count in self.counts.items()}


def test_a_stage_that_moves_no_data_for_its_iotimeout_is_stalled():
    samples = Samples()
    watch = ProgressWatch(samples)
    watch.watch("debian", 1, 60, now=0)
    assert watch.next_check() == 15  # a quarter of the iotimeout
    assert watch.check(15) == []
    samples.counts[1] = 10 * PROGRESS_BYTES  # progress at 30 s
    assert watch.check(30) == []
    samples.counts[1] += PROGRESS_BYTES  # keep-alive-sized trickles are not progress
    assert watch.check(60) == [] and watch.check(75) == []
    assert watch.check(90) == [("debian", 60)]
    assert watch.next_check() is None  # nothing is watched: no timer


def test_a_new_process_in_the_tree_with_data_is_progress_and_forget_stops_the_timer():
    samples = Samples()
    watch = ProgressWatch(samples)
    watch.watch("debian", 1, 8, now=0)
    assert watch.next_check() == 2
    samples.counts[2] = 2 * PROGRESS_BYTES
    assert watch.check(8) == [] and watch.check(10) == []
    watch.forget("debian")
    assert watch.next_check() is None and watch.check(100) == []


def test_cpu_time_without_io_is_progress_too():
    samples = Samples()
    watch = ProgressWatch(samples)
    watch.watch("debian", 1, 60, now=0)
    for now in (15, 30, 45, 60, 75):  # an lstat walk: CPU, no bytes
        samples.ticks[1] = now * 10
        assert watch.check(now) == []
    samples.ticks[1] += 50  # half a second in a minute: blocked, not walking
    assert watch.check(90) == [] and watch.check(105) == [] and watch.check(120) == []
    assert watch.check(135) == [("debian", 60)]


def test_tree_io_reads_a_real_process_tree():
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time\n"
                              "p = subprocess.Popen(['sleep', '30'])\n"
                              "sys.stdout.write('x' * 100000); sys.stdout.flush()\n"
                              "time.sleep(30)"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        counts: dict[int, int] = {}
        while time.monotonic() < deadline:
            counts = tree_io(child.pid)
            if len(counts) == 2 and counts[child.pid][0] >= 100000:
                break
            time.sleep(0.05)
        assert len(counts) == 2 and counts[child.pid][0] >= 100000
    finally:
        for pid in tree_io(child.pid):
            if pid != child.pid:
                os.kill(pid, 9)
        child.kill()
        child.wait()
    assert tree_io(child.pid) == {}


# --- trace files ----------------------------------------------------------------------


FACTS = TraceFacts(host="mirror.example.org", running_on="web3.example.org", version="1.0",
                   started=1_700_000_000,
                   ended=1_700_000_394, upstream="rsync://syncproxy.example.net/debian/",
                   maintainer="Admins <admins@example.org>", stage_seconds=[347.2, 46.9],
                   bytes_received=1109846675)


def test_the_trace_has_ftpsyncs_fields_in_its_order():
    text = trace_text(FACTS, "2023111402")
    assert text.splitlines() == [
        "Tue Nov 14 22:19:54 UTC 2023",
        "Date: Tue, 14 Nov 2023 22:19:54 +0000",
        "Date-Started: Tue, 14 Nov 2023 22:13:20 +0000",
        "Archive serial: 2023111402",
        "Used mirrord version: 1.0",
        "Creator: mirrord 1.0",
        "Running on host: web3.example.org",
        "Maintainer: Admins <admins@example.org>",
        "Upstream-mirror: syncproxy.example.net",
        "Total bytes received in rsync: 1109846675",
        "Total time spent in stage1 rsync: 347",
        "Total time spent in stage2 rsync: 47",
        "Total time spent in rsync: 394",
        "Average rate: 2816869 B/s",
    ]


def test_trace_helpers():
    assert date_line(0) == "Thu Jan  1 00:00:00 UTC 1970"  # `date -u`: the day padded
    assert archive_serial(b"Fri Nov 13 UTC 2026\nArchive serial: 2026111302\n") == "2026111302"
    assert archive_serial(b"garbage") == "unknown"
    assert bytes_received(b"Total bytes received: 1,234,567\n...\nTotal bytes received: 89\n") \
        == 89
    assert bytes_received(b"no stats") is None
    assert [upstream_host(value) for value in (
        "ftp.de.debian.org", "rsync://u@[2001:db8::1]:873/debian/", "u@host", "/srv/x", None)] \
        == ["ftp.de.debian.org", "2001:db8::1", "host", "localhost", "unknown"]
    odd = trace_text(TraceFacts("h", "h", "1", 0, 1, "x", "", [1.0], None), "a\nInjected: 1")
    assert "Injected: 1" not in odd.splitlines() and "Total bytes" not in odd


def test_write_trace_writes_the_trace_and_the_list(tmp_path):
    traces = tmp_path / "project" / "trace"
    traces.mkdir(parents=True)
    (traces / "master").write_text("Mon Nov 13 UTC 2023\nArchive serial: 2023111301\n")
    (traces / "syncproxy.example.net").write_text("x\n")
    path = write_trace(str(tmp_path), FACTS)
    assert path == str(traces / "mirror.example.org")
    assert "Archive serial: 2023111301\n" in (traces / "mirror.example.org").read_text()
    assert (traces / "_traces").read_text() == (
        "master\nmirror.example.org\nsyncproxy.example.net\n")
    assert not [name for name in os.listdir(traces) if name.startswith(".")]


def test_odd_file_names_from_upstream_never_reach_the_list(tmp_path):
    traces = tmp_path / "project" / "trace"
    traces.mkdir(parents=True)
    for name in (b"evil\xff", b"a\nInjected", b".hidden", b"_private", b"ok.example.org"):
        with open(os.path.join(os.fsencode(traces), name), "wb") as handle:
            handle.write(b"x\n")
    write_trace(str(tmp_path), FACTS)
    assert (traces / "_traces").read_text() == "mirror.example.org\nok.example.org\n"


def test_write_trace_never_follows_a_planted_link(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    localdir = tmp_path / "mirror"
    (localdir / "project").mkdir(parents=True)
    os.symlink(elsewhere, localdir / "project" / "trace")
    with pytest.raises(OSError):
        write_trace(str(localdir), FACTS)
    assert os.listdir(elsewhere) == []
    os.unlink(localdir / "project" / "trace")
    (localdir / "project" / "trace").mkdir()
    target = elsewhere / "passwd"
    target.write_text("root:x:0:0\n")
    os.symlink(target, localdir / "project" / "trace" / "mirror.example.org")
    write_trace(str(localdir), FACTS)  # replaces the link, never writes through it
    assert target.read_text() == "root:x:0:0\n"
    assert not os.path.islink(localdir / "project" / "trace" / "mirror.example.org")


# --- checkfile copies -----------------------------------------------------------------


def test_checkfile_copies_compare_and_keep(tmp_path):
    checkdir = str(tmp_path / "state" / "checkfiles")
    os.mkdir(tmp_path / "state", 0o755)
    checkfiles.prepare_checkdir(checkdir)
    assert os.stat(checkdir).st_mode & 0o777 == 0o700
    fetched = checkfiles.fetched_path(checkdir, "debian")

    def fetch(text: str) -> None:
        with open(fetched, "w") as handle:
            handle.write(text)

    def compare(key: str) -> Fetched:
        return checkfiles.compare_fetched(checkdir, "debian", key.encode())

    fetch("serial 1\n")
    assert compare("k1") is Fetched.CHANGED  # no copy of a success yet
    assert checkfiles.keep_fetched(checkdir, "debian", b"k1")
    fetch("serial 1\n")
    assert compare("k1") is Fetched.UNCHANGED
    assert compare("k2") is Fetched.CHANGED  # the task now syncs otherwise
    fetch("serial 2\n")
    assert compare("k1") is Fetched.CHANGED
    checkfiles.discard_fetched(checkdir, "debian")
    assert compare("k1") is Fetched.MISSING
    os.symlink(checkfiles.saved_path(checkdir, "debian"), fetched)  # not followed
    assert compare("k1") is Fetched.MISSING
    os.unlink(fetched)
    fetch("x" * (checkfiles.MAX_CHECK_BYTES + 1))
    assert compare("k1") is Fetched.MISSING
    fetch("serial 1\n")
    checkfiles.forget_saved(checkdir, "debian")  # a sync stage started
    assert compare("k1") is Fetched.CHANGED


def test_a_sync_stage_drops_the_saved_copy_and_success_keeps_the_new_one(tmp_path):
    from mirror.cron import CronSchedule
    from mirror.kinds.rsync import RsyncOptions
    from mirror.task import TaskSpec

    os.mkdir(tmp_path / "state", 0o700)
    work = StageWork(str(tmp_path / "state" / "checkfiles"), time.monotonic)
    task = TaskSpec(name="debian", enabled=True, time="0 * * * *",
                    schedule=CronSchedule.parse("0 * * * *"),
                    options=RsyncOptions(command="/usr/bin/rsync", rsyncdir="debian",
                                         checkfile="project/trace/master"),
                    upstreams=("m.example.org",), localdir=str(tmp_path / "local"))
    run = Run(task=task, kind=RunKind.RUN, plan=[
        Stage(("rsync",), role=StageRole.CHECK), Stage(("rsync",))], upstream=None,
        upstream_index=0, started=0.0, log_path=str(tmp_path / "log"))
    assert work.before_spawn(run) is None  # the check: the private directory is made
    fetched = checkfiles.fetched_path(work.checkdir, "debian")
    with open(fetched, "w") as handle:
        handle.write("serial 1\n")
    assert work.stage_ended(run, 0, 1.0)[0] is False  # no saved copy yet: sync
    run.stage = 2
    assert work.before_spawn(run) is None
    work.stage_ended(run, 0, 2.0)
    assert work.run_ended(run, RunResult.SUCCESS, 2.0, GeneralSettings()) == []
    assert checkfiles.compare_fetched(work.checkdir, "debian", checkfiles.sync_key(task)) \
        is Fetched.MISSING  # the fetched copy became the saved one
    with open(fetched, "w") as handle:
        handle.write("serial 1\n")
    run.stage = 1
    assert work.stage_ended(run, 0, 3.0)[0] is True  # the same file, the same task
    run.stage = 2
    work.before_spawn(run)  # an admin's sync starts: the tree changes
    assert not os.path.exists(checkfiles.saved_path(work.checkdir, "debian"))


def test_an_unsafe_checkdir_is_reported_and_the_check_is_left_out(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    work = StageWork(str(shared / "checkfiles"), time.monotonic)
    run = Run(task=None, kind=RunKind.RUN,  # type: ignore[arg-type]
              plan=[Stage(("rsync",), role=StageRole.CHECK)], upstream=None,
              upstream_index=0, started=0.0, log_path="")
    assert "can be changed by a user other than" in work.before_spawn(run)


def test_a_checkdir_others_can_change_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UnsafePath, match="can be changed by a user other than"):
        checkfiles.prepare_checkdir(str(shared / "checkfiles"))
    private = tmp_path / "private"
    private.mkdir()
    os.symlink(shared, private / "checkfiles")
    with pytest.raises(UnsafePath, match="only mirrord's user"):
        checkfiles.prepare_checkdir(str(private / "checkfiles"))


# --- run records ----------------------------------------------------------------------


def test_a_run_record_keeps_stage_roles_and_the_outcome_a_hook_is_told():
    record = RunRecord(
        name="debian", kind=RunKind.RUN,
        plan=(Stage(("/bin/check",), {}, StageRole.CHECK), Stage(("/bin/sync",)),
              Stage(("/bin/hook",), {"MIRROR_RESULT": "failed"}, StageRole.ON_FAILURE)),
        stage=3, upstream=None, upstream_index=0, started=1_700_000_000.0,
        stage_started=1_700_000_100.0, log_path="/var/log/x", first_pid=10,
        identity=ProcessIdentity(pid=12, start_ticks=5, boot="b", run_id="r"), ending=None,
        localdir=None, resolved=None, outcome=RunResult.FAILED, outcome_code=23)
    again = RunRecord.from_dict("debian", record.to_dict())
    assert again == record
    damaged = record.to_dict()
    damaged["plan"][0]["role"] = "rm -rf"
    with pytest.raises(ValueError, match="role"):
        RunRecord.from_dict("debian", damaged)
