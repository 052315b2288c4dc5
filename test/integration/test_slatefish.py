# SPDX-License-Identifier: GPL-3.0-or-later
"""SlateFish in a real daemon: real rsync runs, real HTTP, a real headless browser."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from test.integration.conftest import Mirrord, free_port, general, wait_for
from test.integration.test_daemon import rsync_task
from test.prometheus_tools import prometheus_tool
from test.rawhttp import raw_request

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "status-page.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOUR = 3600
DAY = 86400
GIB = 1024**3
TIB = 1024**4

# What each task of the site is left in, as the tunasync word the page, /jobs and the API use.
EXPECTED_STATES = {"archlinux": "failed", "debian": "success", "fedora": "disabled",
                   "gentoo": "paused", "kernel": "syncing", "pypi": "none", "ubuntu": "success"}


# urllib would honour http_proxy from the environment; these requests go to 127.0.0.1 only.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; error statuses are returned, not raised."""
    try:
        with _OPENER.open(urllib.request.Request(url, method=method), timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def seeded_state(now: float) -> dict:
    """History from before this daemon started (as an earlier mirrord would have left it), so
    the page shows realistic ages and sizes."""
    def history(ago: float, took: float, size: float, **extra: object) -> dict:
        return {"last_start": now - ago - took, "last_end": now - ago, "duration": took,
                "last_success": now - ago, "result": "success", "exit_code": 0,
                "size": round(size), **extra}

    return {"version": 1, "tasks": {
        "archlinux": history(2 * DAY + 3 * HOUR, 540, 87 * GIB, result="failed", exit_code=23,
                             consecutive_failures=2, failures_total=4),
        "debian": history(6 * HOUR, 1260, 1.6 * TIB),
        "fedora": history(9 * DAY, 2 * HOUR, 412 * GIB, failures_total=1),
        "gentoo": history(26 * HOUR, 720, 612 * GIB),
        "kernel": history(4 * HOUR, 95, 1.2 * TIB),
        "ubuntu": history(3 * HOUR, 1830, 2.1 * TIB),
    }}


def daily_in(hours: int) -> str:
    """A daily cron schedule due *hours* from now (the daemon runs in UTC), so that no
    scheduled run can start while the tests look at the page."""
    now = datetime.now(timezone.utc)
    return f"{now.minute} {(now.hour + hours) % 24} * * *"


class Site:
    """A daemon with SlateFish on *port*, its tasks left in every state the page knows."""

    def __init__(self, daemon: Mirrord, port: int, rsync_url: str, seeded: dict) -> None:
        self.daemon = daemon
        self.port = port
        self.rsync_url = rsync_url
        self.seeded = seeded

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get_json(self, path: str) -> object:
        status, headers, body = fetch(self.url(path))
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        return json.loads(body)


@pytest.fixture(scope="module")
def site(rsync_daemon, tmp_path_factory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("slatefish")
    port = free_port()
    url = rsync_daemon.url()
    slow = rsync_daemon.url("slow")
    throttled = "--recursive --times --bwlimit=16"  # 4 MiB at 16 KiB/s: minutes
    config = (general(loadlimit="1000", httpconn="100000", httpports=str(port))
              + rsync_task("archlinux", url, "@DIR@/archlinux", rsyncdir="archlinux/missing",
                           time=daily_in(2))
              + rsync_task("debian", url, "@DIR@/debian", rsyncdir="debian", time=daily_in(5))
              + rsync_task("fedora", url, "@DIR@/fedora", enabled="no", time=daily_in(1))
              + rsync_task("gentoo", slow, "@DIR@/gentoo", args=throttled, time=daily_in(7))
              + rsync_task("kernel", slow, "@DIR@/kernel", args=throttled, time=daily_in(3))
              + rsync_task("pypi", url, "@DIR@/pypi", rsyncdir="pypi", time=daily_in(1))
              + rsync_task("ubuntu", url, "@DIR@/ubuntu", rsyncdir="docs", time=daily_in(4)))
    # Size would replace the seeded sizes with the test tree's few kilobytes.
    (directory / "plugin.ini").write_text(f"[slatefish]\nlisten = 127.0.0.1:{port}\n"
                                          "[size]\nenabled = 0\n")
    seeded = seeded_state(time.time())
    (directory / "state.json").write_text(json.dumps(seeded))
    daemon = Mirrord(directory, config.replace("@DIR@", str(directory)))
    daemon.start()
    try:
        for name in ("debian", "ubuntu", "archlinux"):
            daemon.ask({"command": "run", "name": name, "wait": True}, timeout=60)
        assert daemon.ask({"command": "run", "name": "gentoo"})["ok"]
        wait_for(lambda: (daemon.directory / "gentoo").exists(), what="gentoo to start")
        assert daemon.ask({"command": "cancel", "name": "gentoo"})["ok"]
        daemon.wait_result("gentoo")
        assert daemon.ask({"command": "run", "name": "kernel"})["ok"]
        yield Site(daemon, port, url, seeded)
    finally:
        daemon.stop()


def test_api_status_reports_every_task(site):
    before = time.time()
    document = site.get_json("/api/status")
    tasks = {task["name"]: task for task in document["tasks"]}
    assert list(tasks) == sorted(EXPECTED_STATES)
    assert {name: task["jobs_status"] for name, task in tasks.items()} == EXPECTED_STATES
    assert {name: task["state"] for name, task in tasks.items()} == {
        name: {"syncing": "running", "disabled": "disabled"}.get(word, "idle")
        for name, word in EXPECTED_STATES.items()}
    assert abs(datetime.fromisoformat(document["generated"]).timestamp()
               - document["generated_ts"]) < 1
    assert abs(document["generated_ts"] - before) < 5

    debian = tasks["debian"]
    assert (debian["last_result"], debian["exit_code"], debian["message"]) == (
        "success", 0, "Success")
    assert debian["upstream"] == site.rsync_url
    assert before - 60 < debian["last_success_ts"] <= before
    assert datetime.fromisoformat(debian["last_success"]).timestamp() == pytest.approx(
        debian["last_success_ts"], abs=1)

    arch = tasks["archlinux"]
    assert (arch["last_result"], arch["exit_code"], arch["signal"]) == ("failed", 23, None)
    assert arch["message"] == "Partial transfer due to error"
    assert (arch["consecutive_failures"], arch["failures_total"]) == (3, 5)
    assert arch["last_success_ts"] == site.seeded["tasks"]["archlinux"]["last_success"]
    assert arch["size"] == 87 * GIB and arch["size_human"] == "87.0G"

    gentoo = tasks["gentoo"]
    assert gentoo["last_result"] == "cancelled" and gentoo["message"] == "Cancelled by an admin"
    assert gentoo["upstream"] == site.rsync_url.replace("/mirror/", "/slow/")

    kernel = tasks["kernel"]
    assert kernel["running"] and isinstance(kernel["pid"], int) and kernel["stage"] == 1
    assert before - 60 < kernel["started_ts"] <= before

    pypi = tasks["pypi"]
    assert pypi["last_result"] is None and pypi["message"] == "Never run"
    assert pypi["last_success"] is None and pypi["last_success_ts"] is None
    assert pypi["next_run_ts"] > before and pypi["size"] is None

    assert not tasks["fedora"]["enabled"] and tasks["fedora"]["next_run"] is None
    queued = {(entry["name"], entry["kind"]) for entry in document["queue"]}
    assert ("pypi", "run") in queued and ("fedora", "run") not in queued
    assert all(entry["due"] and entry["due_ts"] for entry in document["queue"])


def test_jobs_is_the_tunasync_feed(site):
    jobs = {job["name"]: job for job in site.get_json("/jobs")}
    assert {name: job["status"] for name, job in jobs.items()} == EXPECTED_STATES
    assert jobs["pypi"]["last_update"] == "0001-01-01 00:00:00 +0000"
    assert jobs["pypi"]["last_update_ts"] == -62135596800
    assert jobs["fedora"]["size"] == "412.0G" and jobs["pypi"]["size"] == "unknown"
    assert jobs["debian"]["upstream"] == site.rsync_url and jobs["debian"]["is_master"]
    expected = int(site.seeded["tasks"]["fedora"]["last_success"])
    assert jobs["fedora"]["last_update_ts"] == expected


def test_metrics_are_prometheus_text_with_the_daemons_values(site):
    status, headers, body = fetch(site.url("/metrics"))
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}

    def values(name: str, label: str = "task") -> dict[str, float]:
        return {sample.labels[label]: sample.value for sample in families[name].samples}

    assert values("mirror_task_running") == {
        name: float(state == "syncing") for name, state in EXPECTED_STATES.items()}
    assert values("mirror_task_enabled")["fedora"] == 0
    api = {task["name"]: task for task in site.get_json("/api/status")["tasks"]}
    assert values("mirror_task_last_exit_code") == {
        name: task["exit_status"] for name, task in api.items() if name != "pypi"}
    assert values("mirror_task_last_exit_code")["archlinux"] == 23
    assert families["mirror_task_failures"].type == "counter"
    assert families["mirror_task_failures"].samples[0].name == "mirror_task_failures_total"
    assert values("mirror_task_failures") == {
        "archlinux": 5, "debian": 0, "fedora": 1, "gentoo": 0, "kernel": 0, "pypi": 0,
        "ubuntu": 0}
    assert values("mirror_task_consecutive_failures")["archlinux"] == 3
    success = values("mirror_task_last_success_timestamp_seconds")
    assert "pypi" not in success
    assert success == {name: task["last_success_ts"] for name, task in api.items()
                       if task["last_success_ts"] is not None}
    assert values("mirror_task_last_duration_seconds")["fedora"] == 2 * HOUR
    assert values("mirror_task_size_bytes")["fedora"] == 412 * GIB
    assert "pypi" not in values("mirror_task_size_bytes")
    next_runs = values("mirror_task_next_run_timestamp_seconds")
    assert "fedora" not in next_runs and next_runs["pypi"] == api["pypi"]["next_run_ts"]

    # debian synced for real, with rsync's --stats: its bytes and its duration are counted
    received = values("mirror_task_last_received_bytes")
    assert received["debian"] > 0 and "fedora" not in received
    assert values("mirror_task_received_bytes")["debian"] == received["debian"]
    counts = {sample.labels["task"]: sample.value
              for sample in families["mirror_task_run_duration_seconds"].samples
              if sample.name.endswith("_count")}
    assert counts["debian"] == 1 and counts["fedora"] == 0
    assert values("mirror_task_upstream_info", "upstream") == {site.rsync_url: 1,
                                                               site.rsync_url.replace(
                                                                   "/mirror/", "/slow/"): 1}

    queue = values("mirror_queue_entries", "kind")
    assert set(queue) == {"run", "retry", "timeout", "system"}
    assert queue["run"] == sum(1 for task in api.values() if task["next_run_ts"] is not None)
    # httpports is the status page's own port, so this very scrape is a connection to it.
    assert families["mirror_http_connections"].samples[0].value >= 1
    assert families["mirror_load5"].samples[0].value == pytest.approx(os.getloadavg()[1],
                                                                      abs=0.5)


def test_metrics_pass_promtool(site):
    """Prometheus's own linter finds nothing to say about a live daemon's /metrics."""
    promtool = prometheus_tool("promtool")
    body = fetch(site.url("/metrics"))[2]
    assert b"mirror_task_run_duration_seconds_bucket" in body
    checked = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                             timeout=60)
    assert checked.returncode == 0 and not checked.stdout and not checked.stderr, checked


def test_http_edges(site):
    status, headers, body = fetch(site.url("/"), "HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert fetch(site.url("/nothing-here"))[0] == 404
    assert fetch(site.url("/api/status/"))[0] == 404
    status, headers, _body = fetch(site.url("/jobs"), "POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert fetch(site.url("/"), "DELETE")[0] == 405
    assert raw_request(site.port, b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    answer = raw_request(site.port, b"GET /jobs?x=1 HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b'"name": "archlinux"' in answer


def test_a_stalled_client_does_not_hold_up_others(site):
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as stalled:
        stalled.sendall(b"GET / HTTP/1.1\r\n")  # and never finishes its request
        started = time.monotonic()
        assert fetch(site.url("/api/status"))[0] == 200
        assert time.monotonic() - started < 2


class _Rows(HTMLParser):
    """Collects the task rows (id and data-state) and each row's text."""

    def __init__(self) -> None:
        super().__init__()
        self.states: dict[str, str] = {}
        self.text: dict[str, str] = {}
        self._row: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and (found.get("id") or "").startswith("task-"):
            self._row = found["id"][len("task-"):]
            self.states[self._row] = found.get("data-state") or ""
            self.text[self._row] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None:
            self.text[self._row] += data + " "


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing; apt-get install chromium")
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-proxy-server", f"--user-data-dir={profile}", *args],
        capture_output=True, timeout=90)


def test_page_in_a_real_browser(site, tmp_path):
    result = chromium("--dump-dom", site.url("/"), profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    rows = _Rows()
    rows.feed(result.stdout.decode())
    assert rows.states == EXPECTED_STATES
    assert "never" in rows.text["pypi"].split()
    assert "Partial transfer due to error" in rows.text["archlinux"]
    assert "exit 23" in rows.text["archlinux"] and "3 failures in a row" in rows.text["archlinux"]
    assert "2 d ago" in rows.text["archlinux"] and "87.0G" in rows.text["archlinux"]
    assert site.rsync_url in rows.text["debian"]
    assert "Cancelled by an admin" in rows.text["gentoo"]
    assert "started just now" in rows.text["kernel"] or "min ago" in rows.text["kernel"]

    update = os.environ.get("MIRROR_UPDATE_SCREENSHOT") == "1"
    target = SCREENSHOT if update else tmp_path / "status-page.png"
    result = chromium(f"--screenshot={target}", "--window-size=1280,620", "--hide-scrollbars",
                      "--force-device-scale-factor=1", site.url("/"),
                      profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    image = target.read_bytes()
    assert image.startswith(PNG_SIGNATURE) and len(image) > 20000
    width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
    assert (width, height) == (1280, 620)


def test_invalid_listen_is_reported_by_check(tmp_path):
    (tmp_path / "mirror.ini").write_text(general(str(tmp_path)) + "[job]\ntype = simple\n"
                                         "command = true\ntime = @daily\n")
    (tmp_path / "plugin.ini").write_text("[slatefish]\nlisten = localhost:http\n")
    result = Mirrord(tmp_path, (tmp_path / "mirror.ini").read_text()).cli("--check")
    assert result.returncode == 1
    assert (f"{tmp_path}/plugin.ini:2: [slatefish] listen: 'http' in 'localhost:http' is not "
            "a port number (1–65535)") in result.stdout


def test_a_port_in_use_leaves_the_daemon_running_without_the_page(mirrord):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = mirrord(general(), plugins=f"[slatefish]\nlisten = 127.0.0.1:{port}\n")
        wait_for(lambda: "mirrord started" in daemon.log(), what="the daemon to start")
        log = daemon.log()
        assert "plugin SlateFish failed to start; mirrord goes on without it" in log
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in log
        assert daemon.answers()


def test_reload_moves_the_page_and_stop_closes_it(mirrord):
    first, second = free_port(), free_port()
    daemon = mirrord(general(), plugins=f"[slatefish]\nlisten = 127.0.0.1:{first}\n")
    assert fetch(f"http://127.0.0.1:{first}/jobs")[0] == 200
    assert f"status page on http://127.0.0.1:{first}/" in daemon.log()
    (daemon.directory / "plugin.ini").write_text(f"[slatefish]\nlisten = 127.0.0.1:{second}\n")
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: f"status page on http://127.0.0.1:{second}/" in daemon.log(),
             what="the page to move")
    assert fetch(f"http://127.0.0.1:{second}/jobs")[0] == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", first), timeout=5).close()
    assert daemon.stop() == 0
    assert "status page stopped" in daemon.log()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", second), timeout=5).close()

