# SPDX-License-Identifier: GPL-3.0-or-later
"""SlateFish's parts on their own: the listen setting, the page, the API document, the
metrics, the routes' error answers and the HTTP server's behaviour."""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time
from concurrent import futures
from datetime import timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import mirror
from mirror.cron import CronSchedule
from mirror.events import RunFinishedEvent
from mirror.history import RunResult
from mirror.interval import IntervalSchedule
from mirror.loopcalls import LoopClosed
from mirror.plugins.slatefish import SlateFish
from mirror.plugins.slatefish.app import StatusApplication
from mirror.plugins.slatefish.filesystems import mount_point
from mirror.plugins.slatefish.listen import address_text, parse_listen
from mirror.plugins.slatefish.metrics import RESULT_CODES
from mirror.plugins.slatefish.page import relative, render_page
from mirror.plugins.slatefish.runtally import RunTally
from mirror.plugins.slatefish.server import HttpServer, ListenError, Response
from mirror.policy import Conditions
from mirror.task import GeneralSettings
from mirror.viewjson import api_document
from mirror.views import QueueView, Snapshot, TaskView
from test.rawhttp import raw_request

NOW = 1_700_000_000.0


def task(name: str, **changes: object) -> TaskView:
    base = TaskView(
        name=name, type="rsync", enabled=True, state="idle",
        upstreams=("rsync://up.example.org/x/",), upstream=None, localdir=f"/srv/{name}",
        schedule="0 * * * *", pid=None, stage=None, stages=None, started=None, log_path=None,
        timing=CronSchedule.parse("0 * * * *"), received_bytes=None,
        last_start=None, last_end=None, last_success=None, duration=None, result=None,
        exit_code=None, signal=None, consecutive_failures=0, failures_total=0, size=None,
        next_run=NOW + 1800)
    return dataclasses.replace(base, **changes)


SNAPSHOT = Snapshot(
    taken=NOW, zone=timezone.utc, logdir="/var/log/mirror", emails=(),
    tasks=tuple(sorted((  # a snapshot's tasks are in name order
        task("ok", result="success", exit_code=0, last_start=NOW - 3 * 3600 - 60,
             last_end=NOW - 3 * 3600, last_success=NOW - 3 * 3600, duration=60.0,
             size=3 * 1024**3, upstream="rsync://a&b.example.org/<x>/\"q\""),
        task("broken", result="failed", exit_code=23, last_end=NOW - 300, duration=4.0,
             consecutive_failures=2, failures_total=7, last_success=NOW - 2 * 86400),
        task("busy", state="running", pid=4242, stage=1, stages=2, started=NOW - 120),
        task("off", enabled=False, state="disabled", next_run=None),
        task("stopped", result="cancelled", signal="SIGTERM", last_end=NOW - 60),
        task("fresh", type="simple", upstreams=(), localdir=None),
        # After a crash: adopted and ended unattended (counted), or gone (not counted).
        task("adopted", result="unattended", last_end=NOW - 600, duration=7200.0,
             consecutive_failures=3, failures_total=4),
        task("gone", result="interrupted", last_end=NOW - 900, consecutive_failures=2,
             failures_total=2),
    ), key=lambda view: view.name)),
    queue=(QueueView("ok", "run", NOW + 1800, 10), QueueView("broken", "retry", NOW + 60, 10),
           QueueView("logcleaner", "system", NOW + 7200, 5)))

STATES = {"ok": "success", "broken": "failed", "busy": "syncing", "off": "disabled",
          "stopped": "paused", "fresh": "none", "adopted": "failed", "gone": "failed"}


# --- listen ----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "address"), [
    ("127.0.0.1:8000", ("127.0.0.1", 8000)), ("0.0.0.0:80", ("0.0.0.0", 80)),
    ("[::1]:8000", ("::1", 8000)), ("[::]:65535", ("::", 65535)),
    ("mirror.example.org:8080", ("mirror.example.org", 8080)), (" localhost:1 ", ("localhost", 1)),
])
def test_listen_accepts(text, address):
    assert parse_listen(text) == address
    assert parse_listen(address_text(address)) == address


@pytest.mark.parametrize(("text", "message"), [
    ("abc", "'abc' is not HOST:PORT (use e.g. 127.0.0.1:8000"),
    (":8000", "':8000' is not HOST:PORT"),
    ("127.0.0.1:", "'' in '127.0.0.1:' is not a port number (1–65535)"),
    ("127.0.0.1:0", "'0' in '127.0.0.1:0' is not a port number"),
    ("127.0.0.1:65536", "'65536' in '127.0.0.1:65536' is not a port number"),
    ("localhost:http", "'http' in 'localhost:http' is not a port number"),
    ("::1:8000", "put an IPv6 address in brackets, e.g. [::1]:8000"),
    ("[::1]8000", "'[::1]8000' is not HOST:PORT"),
    ("[nope]:80", "'nope' in '[nope]:80' is not an IPv6 address"),
    ("bad_host:80", "'bad_host' in 'bad_host:80' is not an IP address or host name"),
])
def test_listen_rejects_with_a_message_that_helps(text, message):
    with pytest.raises(ValueError) as problem:
        parse_listen(text)
    assert message in str(problem.value)


def test_the_plugin_declares_listen_with_its_default():
    (setting,) = SlateFish.SETTINGS
    assert (setting.key, setting.default) == ("listen", ("127.0.0.1", 8000))


# --- the page --------------------------------------------------------------------------

@pytest.mark.parametrize(("offset", "text"), [
    (0, "just now"), (-30, "just now"), (30, "in a moment"), (-90, "2 min ago"),
    (-3 * 3600 - 600, "3 h ago"), (-3590, "1 h ago"), (7200, "in 2 h"),
    (-47 * 3600, "47 h ago"), (-9 * 86400, "9 d ago"),
])
def test_relative_times(offset, text):
    assert relative(NOW + offset, NOW) == text


class Page(HTMLParser):
    """The task rows' ids, states and texts, every tag seen, and attributes that load."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.states: dict[str, str] = {}
        self.rows: dict[str, str] = {}
        self.tags: set[str] = set()
        self.loads: list[str] = []
        self._row: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        self.tags.add(tag)
        self.loads += [value for key, value in attrs if key in ("src", "srcset", "action")]
        if tag == "link":
            self.loads.append(found.get("href") or "")
        if tag == "tr" and (found.get("id") or "").startswith("task-"):
            self._row = found["id"][5:]
            self.states[self._row] = found["data-state"]
            self.rows[self._row] = ""

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._row is not None:
            self.rows[self._row] += data + " "


def test_page_rows_states_and_texts():
    text = render_page(SNAPSHOT)
    page = Page(text)
    assert page.states == STATES
    assert list(page.rows) == sorted(STATES)
    assert page.rows["ok"].split()[:4] == ["ok", "success", "3", "h"]
    assert "2023-11-14 19:13 UTC" in page.rows["ok"] and "3.0G" in page.rows["ok"]
    assert "never" in page.rows["fresh"].split() and "Never run" in page.rows["fresh"]
    assert "2 failures in a row" in page.rows["broken"] and "exit 23" in page.rows["broken"]
    assert "Partial transfer due to error" in page.rows["broken"]
    assert "stage 1/2, started 2 min ago" in page.rows["busy"]
    assert "Killed by SIGTERM" not in page.rows["stopped"]  # cancelled says so instead
    assert "Cancelled by an admin" in page.rows["stopped"] and "SIGTERM" in page.rows["stopped"]
    assert "not scheduled" in page.rows["off"] and "in 30 min" in page.rows["ok"]
    assert "3 failures in a row" in page.rows["adopted"]
    # No "exit N" among the details: the exit status is unknown.
    assert "Ended while mirrord was not watching it (after a crash); its exit status is " \
        "unknown 10 min ago · took 2 h 0 min" in page.rows["adopted"]
    assert "Interrupted: it ended while mirrord was not running" in page.rows["gone"]
    assert "failures in a row" not in page.rows["gone"]  # an interruption is not counted
    assert '<span class="count" data-state="failed">3 failed</span>' in text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert '<meta http-equiv="refresh" content="60">' in text


def test_page_escapes_and_loads_nothing():
    text = render_page(SNAPSHOT, title="<b>mirrors & co</b>")
    page = Page(text)
    assert "rsync://a&b.example.org/<x>/\"q\"" in page.rows["ok"]
    assert "rsync://a&amp;b.example.org/&lt;x&gt;/&quot;q&quot;" in text
    assert "<b>" not in text and "&lt;b&gt;mirrors &amp; co&lt;/b&gt;" in text
    assert page.loads == [] and "script" not in page.tags and "img" not in page.tags
    assert "url(" not in text and "@import" not in text


def test_page_without_tasks():
    text = render_page(dataclasses.replace(SNAPSHOT, tasks=(), queue=()))
    assert "No tasks configured." in text and "0 tasks" in text


# --- /api/status -----------------------------------------------------------------------

def test_api_document():
    document = api_document(SNAPSHOT)
    json.dumps(document)  # JSON-ready
    assert document["generated"] == "2023-11-14T22:13:20+00:00"
    tasks = {entry["name"]: entry for entry in document["tasks"]}
    # The tunasync word is jobs_status; state is the TaskView's (running, idle, disabled).
    assert {name: entry["jobs_status"] for name, entry in tasks.items()} == STATES
    assert {name: entry["state"] for name, entry in tasks.items()} == {
        task.name: task.state for task in SNAPSHOT.tasks}
    broken = tasks["broken"]
    assert (broken["exit_code"], broken["exit_status"], broken["failures_total"]) == (23, 23, 7)
    assert broken["last_success"] == "2023-11-12T22:13:20+00:00"
    assert broken["last_success_ts"] == NOW - 2 * 86400
    assert tasks["stopped"]["exit_status"] == -15
    assert tasks["busy"]["running"] and tasks["busy"]["started_ts"] == NOW - 120
    assert tasks["fresh"]["upstream"] is None and tasks["fresh"]["last_success"] is None
    assert tasks["ok"]["size_human"] == "3.0G"
    assert [(entry["name"], entry["kind"]) for entry in document["queue"]] == [
        ("ok", "run"), ("broken", "retry"), ("logcleaner", "system")]


# --- routes ----------------------------------------------------------------------------

class FakeHost:
    """Answers like HostAPI, or fails like it does when the loop is gone or slow."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure

    def snapshot(self, timeout: float = 10.0) -> Snapshot:
        if self.failure is not None:
            raise self.failure
        return SNAPSHOT

    def system_conditions(self) -> Conditions:
        return Conditions(load=1.25, http_connections=17)

    @property
    def general(self) -> GeneralSettings:
        return GeneralSettings(loadlimit=1.0, httpconn=100, maxtasks=1)

    def plugin_backlogs(self) -> dict[str, int]:
        return {"SlateFish": 0, "Notifier": 3}


def test_routes():
    application = StatusApplication(FakeHost())  # type: ignore[arg-type]
    page = application("GET", "/")
    assert page.status == 200 and page.content_type == "text/html; charset=utf-8"
    assert dict(page.headers)["Cache-Control"] == "no-store"
    jobs = json.loads(application("GET", "/jobs").body)
    assert [job["name"] for job in jobs] == sorted(STATES)
    assert json.loads(application("HEAD", "/api/status").body)["tasks"]
    assert application("GET", "/missing").status == 404
    refused = application("POST", "/")
    assert refused.status == 405 and ("Allow", "GET, HEAD") in refused.headers


@pytest.mark.parametrize("failure", [LoopClosed("mirrord is stopping"), TimeoutError(),
                                     futures.TimeoutError()])
@pytest.mark.parametrize("path", ["/", "/api/status", "/jobs", "/metrics"])
def test_routes_answer_503_when_the_daemon_does_not(failure, path):
    response = StatusApplication(FakeHost(failure))(  # type: ignore[arg-type]
        "GET", path)
    assert response.status == 503 and ("Retry-After", "10") in response.headers


def test_metrics(tmp_path):
    localdir = tmp_path / "ok"
    localdir.mkdir()
    snapshot = dataclasses.replace(SNAPSHOT, tasks=tuple(
        dataclasses.replace(view, localdir=str(localdir), received_bytes=12_345,
                            timing=IntervalSchedule(6 * 3600)) if view.name == "ok" else view
        for view in SNAPSHOT.tasks))
    host = FakeHost()
    host.snapshot = lambda timeout=10.0: snapshot  # type: ignore[method-assign]
    tally = RunTally()
    for seconds, received in ((5.0, 100), (45.0, None), (7200.0, 2_000)):
        tally.observe(finished_event("ok", seconds, received))
    response = StatusApplication(host, tally)("GET", "/metrics")  # type: ignore[arg-type]
    assert response.content_type.startswith("text/plain; version=")
    families = {family.name: family
                for family in text_string_to_metric_families(response.body.decode())}

    def values(name: str, label: str = "task") -> dict[str, float]:
        return {sample.labels[label]: sample.value for sample in families[name].samples}

    assert values("mirror_task_running") == {name: float(state == "syncing")
                                             for name, state in STATES.items()}
    assert values("mirror_task_last_exit_code") == {"ok": 0, "broken": 23, "stopped": -15}
    assert values("mirror_task_last_success_timestamp_seconds") == {
        "ok": NOW - 3 * 3600, "broken": NOW - 2 * 86400}
    assert values("mirror_task_last_end_timestamp_seconds")["broken"] == NOW - 300
    assert values("mirror_task_last_duration_seconds") == {"ok": 60, "broken": 4,
                                                           "adopted": 7200}
    assert values("mirror_task_failures")["broken"] == 7
    assert values("mirror_task_failures")["adopted"] == 4
    assert values("mirror_task_consecutive_failures")["gone"] == 2
    assert families["mirror_task_failures"].type == "counter"
    assert values("mirror_task_size_bytes") == {"ok": 3 * 1024**3}
    assert values("mirror_task_enabled")["off"] == 0
    assert "off" not in values("mirror_task_next_run_timestamp_seconds")
    # the result: a code to compare, and the word in an info metric
    assert values("mirror_task_last_result_code") == {
        "ok": 0, "broken": 6, "stopped": 3, "adopted": 9, "gone": 5}
    assert values("mirror_task_last_result_info", "result") == {
        "success": 1, "failed": 1, "cancelled": 1, "unattended": 1, "interrupted": 1}
    assert values("mirror_task_schedule_period_seconds") == {
        name: (6 * 3600 if name == "ok" else 3600) for name in STATES}
    assert values("mirror_task_upstream_info", "upstream") == {
        "rsync://a&b.example.org/<x>/\"q\"": 1, "rsync://up.example.org/x/": 1}
    assert "fresh" not in values("mirror_task_upstream_info")  # no upstream at all
    assert values("mirror_task_last_received_bytes") == {"ok": 12_345}
    assert values("mirror_task_received_bytes") == {
        name: (2_100 if name == "ok" else 0) for name in STATES}
    histogram = {(sample.name, sample.labels.get("le")): sample.value
                 for sample in families["mirror_task_run_duration_seconds"].samples
                 if sample.labels["task"] == "ok"}
    assert histogram[("mirror_task_run_duration_seconds_bucket", "10.0")] == 1
    assert histogram[("mirror_task_run_duration_seconds_bucket", "60.0")] == 2
    assert histogram[("mirror_task_run_duration_seconds_bucket", "3600.0")] == 2
    assert histogram[("mirror_task_run_duration_seconds_bucket", "7200.0")] == 3
    assert histogram[("mirror_task_run_duration_seconds_bucket", "+Inf")] == 3
    assert histogram[("mirror_task_run_duration_seconds_count", None)] == 3
    assert histogram[("mirror_task_run_duration_seconds_sum", None)] == 7250
    # the filesystem of the one localdir that exists
    mounts = values("mirror_task_filesystem_info", "mountpoint")
    assert list(mounts) == [mount_point(str(localdir))]
    assert values("mirror_task_filesystem_info") == {"ok": 1}
    free = os.statvfs(localdir)
    assert values("mirror_filesystem_size_bytes", "mountpoint") == {
        mount_point(str(localdir)): free.f_blocks * free.f_frsize}
    # the daemon
    assert values("mirror_queue_entries", "kind") == {"run": 1, "retry": 1, "timeout": 0,
                                                      "system": 1}
    assert values("mirror_tasks", "state") == {"running": 1, "idle": 6, "disabled": 1}
    assert families["mirror_load5"].samples[0].value == 1.25
    assert families["mirror_load5_limit"].samples[0].value == 1.0
    assert families["mirror_http_connections"].samples[0].value == 17
    assert families["mirror_http_connections_limit"].samples[0].value == 100
    assert families["mirror_running_tasks_limit"].samples[0].value == 1
    # load 1.25 ≥ 1.0, 17 < 100 connections, 1 running ≥ maxtasks 1
    assert values("mirror_throttled", "limit") == {"loadlimit": 1, "httpconn": 0, "maxtasks": 1}
    assert values("mirror_plugin_events_pending", "plugin") == {"SlateFish": 0, "Notifier": 3}
    build = families["mirror_build_info"].samples[0]
    assert build.name == "mirror_build_info" and build.labels["version"] == mirror.__version__
    assert "process_resident_memory_bytes" in {
        sample.name for family in families.values() for sample in family.samples}
    assert not any(name.startswith("python_") for name in families)


def test_every_result_has_a_metric_code():
    assert set(RESULT_CODES) == set(RunResult)
    assert sorted(RESULT_CODES.values()) == list(range(len(RunResult)))
    assert all((RESULT_CODES[result] <= 1) == result.fresh for result in RunResult)
    assert all((RESULT_CODES[result] >= 6) == result.went_wrong for result in RunResult)


def finished_event(name: str, seconds: float, received: int | None) -> RunFinishedEvent:
    return RunFinishedEvent(
        taskname=name, kind="run", result=RunResult.SUCCESS, exit_code=0, signal=None,
        started=NOW - seconds, ended=NOW, duration=seconds, stage=1, stages=1, upstream=None,
        log_path="/dev/null", previous_failures=0, consecutive_failures=0, retry_at=None,
        received_bytes=received)


# --- the server ------------------------------------------------------------------------

@pytest.fixture
def served():
    """A server whose /slow waits until the test releases it, and the release."""
    release = threading.Event()

    def application(method: str, path: str) -> Response:
        if path == "/slow":
            release.wait(5)
        return Response(200, f"{method} {path}".encode())

    server = HttpServer(("127.0.0.1", 0), application, timeout=2)
    server.start()
    yield server, release
    release.set()
    server.stop()


def voluntary_switches(thread: threading.Thread) -> int:
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("voluntary_ctxt"))
    return int(line.split()[1])


def test_server_answers_and_closes(served):
    port = served[0].bound[1]
    answer = raw_request(port, b"GET /x?y=1 HTTP/1.1\r\nHost: here\r\n\r\n")
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in head
    assert b"Content-Length: 6" in head and body == b"GET /x"
    assert raw_request(port, b"HEAD / HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\n")
    assert raw_request(port, b"GET /\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
    assert raw_request(port, b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 5000).startswith(b"HTTP/1.1 200")


def test_server_sleeps_while_idle(served):
    name = f"slatefish:127.0.0.1:{served[0].bound[1]}"
    accept_thread = next(thread for thread in threading.enumerate() if thread.name == name)
    time.sleep(0.2)
    before = voluntary_switches(accept_thread)
    time.sleep(1.5)
    assert voluntary_switches(accept_thread) == before  # serve_forever() would poll 3 times


def test_slow_requests_and_stalled_clients_do_not_block_others(served):
    server, release = served
    port = server.bound[1]
    answers: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as stalled:
        stalled.sendall(b"GET / HT")
        slow = threading.Thread(target=lambda: answers.append(
            raw_request(port, b"GET /slow HTTP/1.0\r\n\r\n")))
        slow.start()
        started = time.monotonic()
        assert raw_request(port, b"GET /quick HTTP/1.0\r\n\r\n").endswith(b"GET /quick")
        assert time.monotonic() - started < 1
        release.set()
        slow.join(5)
        assert answers[0].endswith(b"GET /slow")
        # The stalled client is cut off after the connection timeout (2 s here).
        stalled.settimeout(5)
        assert stalled.recv(100) == b""


def test_stop_closes_the_port():
    server = HttpServer(("127.0.0.1", 0), lambda method, path: Response(200))
    server.start()
    port = server.bound[1]
    name = f"slatefish:127.0.0.1:{port}"
    assert [thread for thread in threading.enumerate() if thread.name == name]
    server.stop()
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert not [thread for thread in threading.enumerate() if thread.name == name]


def test_a_port_in_use_is_named_in_the_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError) as problem:
            HttpServer(("127.0.0.1", port), lambda method, path: Response(200)).start()
    assert str(problem.value) == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    with pytest.raises(ListenError) as problem:
        HttpServer(("no-such-host.invalid", 80), lambda method, path: Response(200)).start()
    assert str(problem.value).startswith("cannot listen on no-such-host.invalid:80: ")


def test_ipv6():
    if not socket.has_ipv6:
        pytest.skip("this system has no IPv6")
    server = HttpServer(("::1", 0), lambda method, path: Response(200, path.encode()))
    server.start()
    try:
        host, port = server.bound
        assert host == "::1"
        with socket.create_connection(("::1", port), timeout=5) as conn:
            conn.sendall(b"GET /six HTTP/1.0\r\n\r\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"/six")
    finally:
        server.stop()


def test_too_many_clients_get_503_not_a_thread_each():
    server = HttpServer(("127.0.0.1", 0), lambda method, path: Response(200, b"ok"), timeout=5,
                        max_connections=1)
    server.start()
    try:
        port = server.bound[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as stalled:
            stalled.sendall(b"GET / HT")
            time.sleep(0.2)  # let the server take it before the next one arrives
            with socket.create_connection(("127.0.0.1", port), timeout=5) as refused:
                refused.sendall(b"GET / HTTP/1.0\r\n\r\n")
                assert refused.recv(65536).startswith(b"HTTP/1.1 503 Service Unavailable")
        wait_for_answer = time.monotonic() + 5
        while time.monotonic() < wait_for_answer:  # the stalled one is gone once it hung up
            answer = raw_request(port, b"GET / HTTP/1.0\r\n\r\n")
            if answer.startswith(b"HTTP/1.1 200"):
                break
            time.sleep(0.05)
        assert answer.endswith(b"ok")
    finally:
        server.stop()
