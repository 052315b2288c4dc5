# SPDX-License-Identifier: GPL-3.0-or-later
"""A fleet on loopback, as docs/fleet.md sets it up: two mirrord daemons, Debian's Prometheus
and Alertmanager with the shipped rules and example configurations (only addresses, paths and
waits shortened), a real rsync daemon, a real SMTP server, and mirror-merge-jobs.

Host A has a task that keeps failing (its rsync module does not exist); host B is healthy
until it is killed.

The scenario spends most of its 70 s waiting for the shipped MirrordDown rule's ``for: 1m``,
so it runs in the background from collection on (test/integration/background.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from aiosmtpd.controller import Controller

from test.integration.background import Scenario
from test.integration.conftest import (
    Mirrord,
    build_upstream_tree,
    free_port,
    general,
    start_rsync_daemon,
    wait_for,
)
from test.integration.test_daemon import rsync_task
from test.integration.test_notifier import Inbox
from test.prometheus_tools import SHIPPED, prometheus_tool


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Server:
    """A Prometheus or Alertmanager process on 127.0.0.1 and a free port; :meth:`wait_ready`
    returns once it serves."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.name = argv[0]
        with log.open("wb") as output:
            self.process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)

    def wait_ready(self) -> Server:
        wait_for(lambda: self.process.poll() is not None or serving(self.url("/-/ready")),
                 timeout=30, what=self.name)
        assert self.process.poll() is None, self.log.read_text()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def alertmanager_config(smtp_port: int) -> dict:
    """The shipped example, sending to the test's SMTP server without the example's waits."""
    config = yaml.safe_load((SHIPPED / "alertmanager.yml").read_text())
    config["global"]["smtp_smarthost"] = f"127.0.0.1:{smtp_port}"
    config["route"].update(group_wait="1s", group_interval="1s")
    for route in config["route"]["routes"]:
        route["group_wait"] = "1s"
    return config


def prometheus_config(alertmanager_port: int, targets: Path) -> dict:
    """The shipped example with the repository's rules, the test's Alertmanager and targets,
    and a scrape and an evaluation every second."""
    config = yaml.safe_load((SHIPPED / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(SHIPPED / "mirror-rules.yml")]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{alertmanager_port}"]
    config["scrape_configs"][0]["file_sd_configs"][0]["files"] = [str(targets)]
    return config


def alerts(alertmanager: Server) -> list[dict[str, str]]:
    """The labels of every alert Alertmanager holds now."""
    return [alert["labels"] for alert in get_json(alertmanager.url("/api/v2/alerts"))]


def merge_jobs(output: Path, *ports: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mirror.jobsmerge", "-o", str(output), "--timeout", "3",
         *(f"http://127.0.0.1:{port}/jobs" for port in ports)],
        capture_output=True, text=True, timeout=30)


class Fleet:
    """Starts the scenario's servers and daemons; each is ended when the scenario closes."""

    def __init__(self, base: Path, scenario: Scenario) -> None:
        self.base = base
        self.scenario = scenario
        self.inbox = Inbox()

    def rsync_daemon(self) -> str:
        """A real rsync daemon serving a tree as module ``mirror``; its URL."""
        tree = self.base / "tree"
        tree.mkdir()
        build_upstream_tree(tree)
        process, port = start_rsync_daemon(self.base, {"mirror": tree})
        self.scenario.on_close(lambda: (process.terminate(), process.wait(10)))
        return f"rsync://127.0.0.1:{port}"

    def mail_server(self) -> int:
        self.inbox.port = free_port()
        smtp = Controller(self.inbox, hostname="127.0.0.1", port=self.inbox.port)
        smtp.start()
        self.scenario.on_close(smtp.stop)
        return self.inbox.port

    def server(self, name: str, argv: list[str], port: int) -> Server:
        server = Server(argv, port, self.base / f"{name}.log")
        self.scenario.on_close(server.stop)
        return server.wait_ready()

    def mirrord(self, name: str, config: str, listen_port: int) -> Mirrord:
        directory = self.base / name
        directory.mkdir()
        (directory / "plugin.ini").write_text(f"[slatefish]\nlisten = 127.0.0.1:{listen_port}\n")
        daemon = Mirrord(directory, config.replace("@DIR@", str(directory)))
        self.scenario.on_close(daemon.stop)
        return daemon.start()


def run_scenario(base: Path, scenario: Scenario) -> None:
    """The whole scenario; an assertion that fails raises here."""
    fleet = Fleet(base, scenario)
    rsync = fleet.rsync_daemon()
    smtp_port = fleet.mail_server()
    port = free_port()
    (base / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(smtp_port)))
    alertmanager = fleet.server("alertmanager", [
        prometheus_tool("prometheus-alertmanager"), f"--config.file={base / 'alertmanager.yml'}",
        f"--storage.path={base / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address="], port)
    targets = base / "mirrord-targets.yml"
    targets.write_text("[]\n")
    (base / "prometheus.yml").write_text(
        yaml.safe_dump(prometheus_config(alertmanager.port, targets)))
    port = free_port()
    prometheus = fleet.server("prometheus", [
        prometheus_tool("prometheus"), f"--config.file={base / 'prometheus.yml'}",
        f"--storage.tsdb.path={base / 'prom-data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--rules.alert.resend-delay=1s"], port)

    ports = free_port(), free_port()
    host_a = fleet.mirrord("a", general() + rsync_task("broken", f"{rsync}/nosuchmodule/",
                                                       "@DIR@/broken"), ports[0])
    host_b = fleet.mirrord("b", general() + rsync_task("debian", f"{rsync}/mirror/",
                                                       "@DIR@/debian", rsyncdir="debian"),
                           ports[1])
    instance_a, instance_b = (f"127.0.0.1:{port}" for port in ports)
    # File-based discovery, as in util/prometheus/mirrord-targets.yml: both hosts, one edit.
    targets.write_text(yaml.safe_dump([{"targets": [instance_a, instance_b],
                                        "labels": {"site": "test"}}]))

    assert host_b.ask({"command": "run", "name": "debian", "wait": True}, timeout=60)["ok"]
    for _ in range(3):
        host_a.ask({"command": "run", "name": "broken", "wait": True}, timeout=60)
    assert host_a.status()["broken"]["consecutive_failures"] == 3

    def firing(alertname: str, instance: str) -> dict[str, str] | None:
        return next((labels for labels in alerts(alertmanager)
                     if labels["alertname"] == alertname and labels["instance"] == instance),
                    None)

    failing = wait_for(lambda: firing("MirrorSyncFailing", instance_a), timeout=30,
                       what="MirrorSyncFailing for host A")
    assert failing["task"] == "broken" and failing["site"] == "test"
    # Host B has been scraped and evaluated all along: nothing fires or waits for it.
    rules = get_json(prometheus.url("/api/v1/alerts"))["data"]["alerts"]
    assert [alert for alert in rules if alert["labels"]["instance"] == instance_b] == []
    assert [labels for labels in alerts(alertmanager) if labels["instance"] == instance_b] == []

    # The recording rules: host B's mirror is fresh (a fraction of its daily period).
    def staleness(instance: str) -> list[dict]:
        query = f'instance_task:mirror_staleness_periods{{instance="{instance}"}}'
        return get_json(prometheus.url("/api/v1/query?query=" + urllib.parse.quote(query))
                        )["data"]["result"]

    fresh = wait_for(lambda: staleness(instance_b), timeout=10, what="the recording rules")
    assert fresh[0]["metric"]["task"] == "debian" and float(fresh[0]["value"][1]) < 0.01
    assert staleness(instance_a) == []  # never succeeded: not stale, failing

    # The mail, grouped by host, names the host and the task.
    mail = wait_for(lambda: next((mail for mail in fleet.inbox.mails
                                  if instance_a in mail.message["Subject"]), None),
                    timeout=30, what="Alertmanager's mail for host A")
    assert "broken" in mail.message.get_body(("html", "plain")).get_content()

    # mirror-merge-jobs: one feed for both hosts.
    merged = base / "jobs.json"
    done = merge_jobs(merged, *ports)
    assert done.returncode == 0, done.stderr
    jobs = {job["name"]: job for job in json.loads(merged.read_text())}
    assert {name: job["server"] for name, job in jobs.items()} == {"broken": instance_a,
                                                                   "debian": instance_b}
    assert jobs["debian"]["status"] == "success" and jobs["broken"]["status"] == "failed"

    os.kill(host_b.pid, signal.SIGKILL)
    host_b.process.wait(10)

    # Host B's entries stand in while it cannot be read; the exit status says so.
    done = merge_jobs(merged, *ports)
    assert done.returncode == 1 and f"{instance_b}/jobs" in done.stderr
    assert [job["name"] for job in json.loads(merged.read_text())] == ["broken", "debian"]

    down = wait_for(lambda: firing("MirrordDown", instance_b), timeout=90,
                    what="MirrordDown for host B")
    assert down["severity"] == "critical"
    assert firing("MirrordDown", instance_a) is None


FLEET = Scenario("the fleet scenario", run_scenario)


@pytest.mark.background(FLEET)
def test_a_fleet_alerts_on_the_right_host_and_task():
    FLEET.check(timeout=150)
