# SPDX-License-Identifier: GPL-3.0-or-later
"""systemd: the notify protocol as a real daemon speaks it, and the unit files."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from test.integration.conftest import general, wait_for
from test.integration.test_daemon import simple_task

UNITS = Path(__file__).resolve().parent.parent.parent / "util" / "systemd" / "system"


class NotifySocket:
    """What systemd listens on: a datagram socket; collects each message as a dict."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []

    def receive(self) -> list[dict[str, str]]:
        try:
            while True:
                data = self.sock.recv(4096).decode()
                self.messages.append(dict(line.split("=", 1) for line in data.splitlines()))
        except (TimeoutError, socket.timeout):  # the same since Python 3.10
            return self.messages

    def wait(self, key: str, value: str | None = None, after: int = 0) -> dict[str, str]:
        def found():
            for message in self.receive()[after:]:
                if key in message and (value is None or message[key] == value):
                    return message
            return None
        return wait_for(found, what=f"{key}={value} from mirrord")


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_status_reloading_and_stopping_reach_systemd(mirrord, tmp_path, abstract):
    address = f"@mirror-test-{os.getpid()}-{tmp_path.name}" if abstract else str(
        tmp_path / "notify")
    listener = NotifySocket(address)
    daemon = mirrord(general() + simple_task("quick", "true")
                     + simple_task("long", "sleep 300"), env={"NOTIFY_SOCKET": address})
    ready = listener.wait("READY", "1")
    assert ready["STATUS"] == "2 tasks, 0 running" and ready["MAINPID"] == str(daemon.pid)

    seen = len(listener.messages)
    daemon.ask({"command": "run", "name": "long"})
    listener.wait("STATUS", "2 tasks, 1 running", after=seen)

    seen = len(listener.messages)
    os.kill(daemon.pid, signal.SIGHUP)
    reloading = listener.wait("RELOADING", "1", after=seen)
    assert int(reloading["MONOTONIC_USEC"]) > 0
    listener.wait("READY", "1", after=listener.messages.index(reloading) + 1)

    seen = len(listener.messages)
    assert daemon.stop() == 0
    listener.wait("STOPPING", "1", after=seen)
    listener.wait("STATUS", "2 tasks, 0 running", after=seen)


def test_without_notify_socket_nothing_is_sent_and_nothing_breaks(mirrord):
    daemon = mirrord(general() + simple_task("quick", "true"))
    assert daemon.ask({"command": "run", "name": "quick", "wait": True})["ok"]
    assert "cannot notify systemd" not in daemon.log()


@pytest.mark.parametrize("unit", ["mirrord.service", "mirrord@.service"])
def test_units_pass_systemd_analyze_verify(tmp_path, unit):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    mirrord = shutil.which("mirrord")
    assert mirrord, "mirrord is not on PATH: pip install the package first"
    # verify checks that ExecStart's program exists: point it at the installed one. The man
    # pages are checked by test_manpages.py, not looked up in the system's man path here.
    text = (UNITS / unit).read_text()
    assert "Type=notify" in text and "ExecReload=" in text
    (tmp_path / unit).write_text(text.replace("/usr/local/bin/mirrord", mirrord))
    result = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_the_system_unit_runs_as_mirror_with_its_directories_and_hardening():
    text = (UNITS / "mirrord.service").read_text()
    for line in ("User=mirror", "RuntimeDirectory=mirror", "StateDirectory=mirror",
                 "LogsDirectory=mirrord rsync", "NoNewPrivileges=yes", "ProtectSystem=full",
                 "NotifyAccess=main"):
        assert f"\n{line}\n" in text
    # Strict would make every mirror directory read-only for rsync.
    assert "ProtectSystem=strict" not in text


def test_restart_in_place_tells_systemd_reloading_then_ready_with_the_same_main_pid(
        mirrord, tmp_path):
    address = str(tmp_path / "notify")
    listener = NotifySocket(address)
    daemon = mirrord(general() + simple_task("long", "sleep 300"),
                     env={"NOTIFY_SOCKET": address})
    listener.wait("READY", "1")
    daemon.ask({"command": "run", "name": "long"})
    seen = len(listener.messages)
    restarted = daemon.cli("-s", "restart")
    assert restarted.returncode == 0, restarted.stderr
    reloading = listener.wait("RELOADING", "1", after=seen)
    assert int(reloading["MONOTONIC_USEC"]) > 0
    ready = listener.wait("READY", "1", after=listener.messages.index(reloading))
    # The new image found systemd's socket although the first one took it out of the
    # environment its syncs inherit; the main pid is unchanged.
    assert ready["MAINPID"] == str(daemon.pid) and ready["STATUS"] == "1 tasks, 1 running"
