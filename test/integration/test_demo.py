# SPDX-License-Identifier: GPL-3.0-or-later
"""The README's demo: the daemon on config/demo, driven as the README shows."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from mirror.pidfile import read_pid
from test.integration.conftest import alive, wait_for

ROOT = Path(__file__).resolve().parent.parent.parent


def test_demo_daemon_syncs_and_answers(tmp_path):
    def mirrord(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mirror", "-c", str(ROOT / "config" / "demo"),
                               "-P", str(tmp_path / "mirrord.pid"), *args],
                              capture_output=True, text=True, timeout=60)

    started = mirrord("-l", str(tmp_path / "mirrord.log"))
    assert started.returncode == 0, started.stderr
    pid = wait_for(lambda: read_pid(str(tmp_path / "mirrord.pid")), what="the daemon")
    try:
        queue = mirrord("-t")
        assert queue.returncode == 0
        assert {line.split()[0] for line in queue.stdout.splitlines()[1:]} == {
            "demo-tree", "demo-debian", "demo-hello", "logcleaner"}
        run = mirrord("--run", "demo-debian", "--wait")
        assert run.returncode == 0 and "demo-debian: success" in run.stdout
        release = Path("/tmp/mirror-demo/debian/dists/stable/Release")
        assert release.read_text() == (ROOT / "config/demo/upstream/debian/dists/stable/Release"
                                       ).read_text()
        status = mirrord("--status")
        assert "demo-debian" in status.stdout and "success" in status.stdout
        with urllib.request.urlopen("http://127.0.0.1:8000/jobs", timeout=10) as reply:
            jobs = {job["name"]: job["status"] for job in json.load(reply)}
        assert jobs["demo-debian"] == "success" and set(jobs) == {
            "demo-tree", "demo-debian", "demo-hello"}
        assert wait_for(lambda: Path("/tmp/mirror-demo/status/jobs.json").exists())
    finally:
        stop = mirrord("-s", "stop")
    assert stop.returncode == 0 and not alive(pid)
