# SPDX-License-Identifier: GPL-3.0-or-later
"""The parts the fleet's metrics are made of: schedule periods, the bytes a run received,
run tallies, localdir filesystems, and mirror-merge-jobs's merging and checks."""
from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mirror import jobsmerge
from mirror.cron import PERIOD_DAYS, CronSchedule
from mirror.events import RunFinishedEvent
from mirror.history import RunResult, TaskHistory
from mirror.interval import IntervalSchedule
from mirror.plugins.slatefish.filesystems import FilesystemWatch, mount_point
from mirror.plugins.slatefish.runtally import DURATION_BUCKETS, RunTally
from mirror.runs import Run, RunKind, write_log
from mirror.stagework import StageWork, received_bytes
from mirror.task import Stage, StageRole

# --- schedule periods --------------------------------------------------------------------


@pytest.mark.parametrize(("expression", "hours"), [
    ("0 */6 * * *", 6), ("* * * * *", 1 / 60), ("*/5 * * * *", 5 / 60),
    ("10 0,6,13,20 * * *", 7),  # 20:10 to 00:10 the next day is the longest
    ("0 2 * * 1-5", 72),  # Friday 02:00 to Monday 02:00
    ("0 0 * * 0", 168), ("@monthly", 31 * 24), ("0 3 L * *", 31 * 24),
    ("0 0 * * 1#2", 35 * 24),  # the second Monday: 5 weeks apart at most
    ("0 0 1 1,7 *", 184 * 24),  # 1 July to 1 January
    ("*/5 * 29 2 *", PERIOD_DAYS * 24),  # one day in four years
])
def test_a_cron_period_is_its_longest_gap(expression, hours):
    assert CronSchedule.parse(expression).period_seconds == pytest.approx(hours * 3600)


def test_an_interval_period_is_the_interval():
    assert IntervalSchedule.parse("6h").period_seconds == 6 * 3600


# --- the bytes a run received --------------------------------------------------------------

STATS = ("Number of files: 3\nTotal file size: 300 bytes\nTotal bytes sent: 91\n"
         "Total bytes received: {received}\n\nsent 91 bytes  received {received} bytes\n")


def test_every_sync_stage_counts_the_bytes_its_log_reports(tmp_path):
    log = tmp_path / "task.log"
    log.write_text("=== mirrord: header\n")
    work = StageWork(str(tmp_path / "checkfiles"), time.monotonic)
    from mirror.cron import CronSchedule as Cron
    from mirror.kinds.rsync import RsyncOptions
    from mirror.task import TaskSpec

    task = TaskSpec(name="debian", enabled=True, time="0 * * * *",
                    schedule=Cron.parse("0 * * * *"),
                    options=RsyncOptions(command="/usr/bin/rsync", rsyncdir="debian"),
                    upstreams=("m.example.org",), localdir=str(tmp_path / "local"))
    run = Run(task=task, kind=RunKind.RUN, plan=[Stage(("rsync",)), Stage(("rsync",)),
                                                 Stage(("hook",), role=StageRole.ON_SUCCESS)],
              upstream=None, upstream_index=0, started=0.0, log_path=str(log))
    assert received_bytes(run) is None
    for stage, received in ((1, "1,234"), (2, "66")):
        run.stage = stage
        # as the daemon does: the stage's output starts after the header it writes
        run.log_offset = write_log(str(log), f"=== stage {stage}\n")
        assert run.log_offset == log.stat().st_size
        work.launched(run, os.getpid())
        with log.open("a") as handle:
            handle.write("x" * 20_000 + "\n" + STATS.format(received=received))
        work.stage_ended(run, 0, float(stage))
    run.stage = 3
    run.log_offset = write_log(str(log), "=== stage 3\n")
    work.launched(run, os.getpid())
    with log.open("a") as handle:  # a hook's output says nothing about the sync
        handle.write(STATS.format(received="999999"))
    work.stage_ended(run, 0, 3.0)
    assert received_bytes(run) == 1_300


def test_received_bytes_are_kept_in_the_state_and_checked_when_read():
    assert TaskHistory.from_dict({"received_bytes": 5}).received_bytes == 5
    for bad in (-1, True, "5", 1.5):
        assert TaskHistory.from_dict({"received_bytes": bad}).received_bytes is None


# --- run tallies ----------------------------------------------------------------------------

def finished(name: str, seconds: float, received: int | None = None) -> RunFinishedEvent:
    return RunFinishedEvent(
        taskname=name, kind="run", result=RunResult.FAILED, exit_code=1, signal=None,
        started=0.0, ended=seconds, duration=seconds, stage=1, stages=1, upstream=None,
        log_path="/dev/null", previous_failures=0, consecutive_failures=1, retry_at=None,
        received_bytes=received)


def test_a_tally_counts_durations_into_cumulative_buckets():
    tally = RunTally()
    for seconds in (0.5, 10.0, 10.5, 86400.0, 90000.0, -3.0):
        tally.observe(finished("debian", seconds, 10))
    totals = tally.totals()["debian"]
    buckets = dict(totals.cumulative())
    assert buckets["10.0"] == 3  # 0.5, 10 (the bound is inclusive) and -3 taken as 0
    assert buckets["30.0"] == 4
    assert buckets["86400.0"] == 5
    assert buckets["+Inf"] == totals.runs == 6
    assert list(buckets) == [str(float(bound)) for bound in DURATION_BUCKETS] + ["+Inf"]
    assert totals.seconds == pytest.approx(0.5 + 10 + 10.5 + 86400 + 90000)
    assert totals.received_bytes == 60
    tally.observe(finished("debian", 1.0))
    assert tally.totals()["debian"].received_bytes == 60  # a run whose log did not say
    assert totals.runs == 6  # what totals() gave is a copy


# --- filesystems ----------------------------------------------------------------------------

def test_filesystems_group_localdirs_and_skip_missing_ones(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (tmp_path / "link").symlink_to("/proc", target_is_directory=True)
    watch = FilesystemWatch()
    tasks, usages = watch.measure([("a", str(first)), ("b", str(second)),
                                   ("missing", str(tmp_path / "nope")),
                                   ("linked", str(tmp_path / "link"))])
    mount = mount_point(str(first))
    assert tasks == {"a": mount, "b": mount, "linked": "/proc"}
    assert [usage.mountpoint for usage in usages] == sorted({mount, "/proc"})
    figures = os.statvfs(first)
    here = next(usage for usage in usages if usage.mountpoint == mount)
    assert here.size_bytes == figures.f_blocks * figures.f_frsize
    assert 0 <= here.available_bytes <= here.size_bytes
    # a localdir replaced by a link to another filesystem is followed at the next scrape
    first.rmdir()
    first.symlink_to("/proc", target_is_directory=True)
    assert watch.measure([("a", str(first))])[0] == {"a": "/proc"}


# --- mirror-merge-jobs ----------------------------------------------------------------------

def job(name: str, updated: float | None, status: str = "success") -> dict:
    return {"name": name, "status": status, "last_update_ts": updated}


def test_merge_keeps_the_freshest_copy_and_names_its_server():
    merged = jobsmerge.merge([
        ("m1:8000", [job("debian", 100.0), job("ubuntu", None, "failed")]),
        ("m2:8000", [job("debian", 200.0), job("ubuntu", None), job("arch", 5.0)]),
    ])
    assert [(entry["name"], entry["server"]) for entry in merged] == [
        ("arch", "m2:8000"), ("debian", "m2:8000"), ("ubuntu", "m1:8000")]


@pytest.mark.parametrize(("document", "reason"), [
    ({"name": "x"}, "not a JSON array of jobs"),
    ([{"name": 1}], "entry 0 is not a job"),
    (["debian"], "entry 0 is not a job"),
])
def test_a_feed_that_is_not_jobs_is_refused(document, reason):
    with pytest.raises(jobsmerge.FeedError, match=reason):
        jobsmerge.checked_jobs(document)


@pytest.mark.parametrize("argv", [["file:///etc/passwd"], ["mirror1:8000/jobs"],
                                  ["--timeout", "0", "http://m/jobs"],
                                  ["--timeout", "nan", "http://m/jobs"]])
def test_bad_arguments_are_refused_with_what_is_allowed(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        jobsmerge.main(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "is not an http:// or https:// URL" in error or "positive number of seconds" in error


class Feeds(BaseHTTPRequestHandler):
    """Serves /good (jobs), /huge (too large), /html (not JSON) and /missing (404)."""

    def do_GET(self) -> None:
        bodies = {"/good": json.dumps([job("debian", 1.0)]).encode(),
                  "/huge": b"[" + b" " * (jobsmerge.MAX_FEED_BYTES + 1) + b"]",
                  "/html": b"<html>"}
        body = bodies.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_hosts_that_cannot_be_read_keep_their_last_entries(tmp_path, capsys):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Feeds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    output = tmp_path / "jobs.json"
    try:
        output.write_text(json.dumps([
            {**job("old", 1.0), "server": f"127.0.0.1:{server.server_address[1]}"},
            {**job("gone", 1.0), "server": "decommissioned:8000"}]))
        assert jobsmerge.main(["-o", str(output), f"{base}/good"]) == 0
        assert [entry["name"] for entry in json.loads(output.read_text())] == ["debian"]
        for path, reason in (("/huge", "more than"), ("/html", "not JSON"),
                             ("/missing", "HTTP 404")):
            assert jobsmerge.main(["-o", str(output), f"{base}{path}"]) == 1
            assert reason in capsys.readouterr().err
            # the same server: its entries from the last merge stand in
            assert [entry["name"] for entry in json.loads(output.read_text())] == ["debian"]
        assert jobsmerge.main(["--timeout", "2", "http://127.0.0.1:1/jobs"]) == 1
        assert "cannot fetch it" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()


# --- the text format ------------------------------------------------------------------------

def test_the_exposition_escapes_labels_and_writes_values_prometheus_reads():
    from prometheus_client.parser import text_string_to_metric_families

    from mirror.plugins.slatefish.exposition import Family, labels, render, with_label

    gauge = Family("mirror_test", "gauge", "a help text with a \\ and a\nnewline")
    odd = 'a "quoted" \\ back\nslash'
    gauge.add(labels(task=odd), 1)
    gauge.add(with_label(labels(task="x"), "le", "+Inf"), float("inf"))
    gauge.add(labels(), float("nan"))
    gauge.add(with_label("", "only", "one"), 1_700_000_000.5)
    counter = Family("mirror_test_total", "counter", "counted")
    counter.add(labels(task="x"), 3)
    (parsed_gauge, parsed_counter), = [list(text_string_to_metric_families(render([gauge,
                                                                                   counter])))]
    samples = parsed_gauge.samples
    assert parsed_gauge.documentation == "a help text with a \\ and a\nnewline"
    assert samples[0].labels == {"task": odd} and samples[0].value == 1
    assert samples[1].labels == {"task": "x", "le": "+Inf"} and samples[1].value == float("inf")
    assert samples[2].value != samples[2].value  # NaN
    assert samples[3].labels == {"only": "one"} and samples[3].value == 1_700_000_000.5
    assert parsed_counter.name == "mirror_test" and parsed_counter.type == "counter"
    assert parsed_counter.samples[0].name == "mirror_test_total"
