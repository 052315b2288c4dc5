# SPDX-License-Identifier: GPL-3.0-or-later
"""Real things for the daemon's tests: an rsync daemon on 127.0.0.1 and mirrord processes."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mirror.control import DaemonUnavailable, request

RSYNC = shutil.which("rsync")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll *predicate* until it returns something true (tests may poll; the daemon may not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def build_upstream_tree(root: Path) -> None:
    """A tree with nested dirs, symlinks, hard links and a Debian-like pool/ + dists/ layout."""
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "docs" / "README").write_text("upstream readme\n")
    (root / "docs" / "deep" / "er" / "file.txt").write_text("nested\n" * 100)
    (root / "docs" / "link-to-readme").symlink_to("README")
    (root / "docs" / "dangling").symlink_to("does-not-exist")
    pool = root / "debian" / "pool" / "main" / "h" / "hello"
    pool.mkdir(parents=True)
    for version in ("1.0-1", "1.0-2"):
        (pool / f"hello_{version}_amd64.deb").write_bytes(os.urandom(4096))
    binary = root / "debian" / "dists" / "stable" / "main" / "binary-amd64"
    binary.mkdir(parents=True)
    (binary / "Packages").write_text("Package: hello\nVersion: 1.0-2\n")
    (root / "debian" / "dists" / "stable" / "Release").write_text("Suite: stable\n")
    (root / "big.bin").write_bytes(os.urandom(256 * 1024))
    os.link(root / "big.bin", root / "big-hardlink.bin")
    os.link(root / "docs" / "README", root / "docs" / "README.hardlink")


def answers(socket_path: Path) -> bool:
    """Whether a daemon answers on *socket_path*. The socket exists a moment before the
    daemon's signal handlers are set up, so tests that signal a daemon wait for this."""
    try:
        request(str(socket_path), {"command": "queue"}, timeout=2)
    except (DaemonUnavailable, OSError):
        return False
    return True


@dataclass
class RsyncDaemon:
    port: int
    tree: Path

    def url(self, module: str = "mirror") -> str:
        return f"rsync://127.0.0.1:{self.port}/{module}/"


@pytest.fixture(scope="session")
def rsync_daemon(tmp_path_factory) -> Iterator[RsyncDaemon]:
    """``rsync --daemon --no-detach`` on 127.0.0.1: module ``mirror`` (the tree) and ``slow``."""
    if RSYNC is None:
        pytest.fail("rsync is not installed (apt-get install rsync)")
    base = tmp_path_factory.mktemp("rsyncd")
    tree = base / "tree"
    tree.mkdir()
    build_upstream_tree(tree)
    slow = base / "slow"
    slow.mkdir()
    (slow / "large.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    # For two-stage runs that last: rsyncdir two/, firststage pool (2 MiB), then a small rest.
    (slow / "two" / "pool").mkdir(parents=True)
    (slow / "two" / "pool" / "part.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    (slow / "two" / "top.txt").write_text("the rest of the tree\n")
    process, port = start_rsync_daemon(base, {"mirror": tree, "slow": slow})
    yield RsyncDaemon(port, tree)
    process.terminate()
    process.wait(10)


def start_rsync_daemon(base: Path, modules: dict[str, Path]) -> tuple[subprocess.Popen, int]:
    """``rsync --daemon --no-detach`` on 127.0.0.1 and a free port, serving *modules* (name →
    path) read-only, its config, pid file and log in *base*; returns once it listens."""
    if RSYNC is None:
        pytest.fail("rsync is not installed (apt-get install rsync)")
    port = free_port()
    conf = base / "rsyncd.conf"
    conf.write_text(
        f"pid file = {base}/rsyncd.pid\nuse chroot = no\nread only = yes\nuid = root\n"
        f"gid = root\nlog file = {base}/rsyncd.log\n"
        + "".join(f"[{name}]\npath = {path}\n" for name, path in modules.items()))
    process = subprocess.Popen([RSYNC, "--daemon", "--no-detach", f"--config={conf}",
                                f"--port={port}", "--address=127.0.0.1"])

    def listening():
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, what="the rsync daemon")
    return process, port


class Mirrord:
    """A mirrord started with -D in its own directory, and helpers to talk to it."""

    def __init__(self, directory: Path, config: str) -> None:
        self.directory = directory
        self.config_path = directory / "mirror.ini"
        self.pidfile = directory / "mirrord.pid"
        self.socket = directory / "mirrord.sock"
        self.logfile = directory / "mirrord.log"
        self.write_config(config)
        self.process: subprocess.Popen | None = None

    def write_config(self, text: str) -> None:
        self.config_path.write_text(text)

    def argv(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "mirror", "-c", str(self.directory), "-P",
                str(self.pidfile), *extra]

    def start(self, *extra: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> Mirrord:
        """Start it with -D; from *cwd*, ``python -m mirror`` imports the mirror found there."""
        self.process = subprocess.Popen(
            self.argv("-D", "-l", str(self.logfile), "-L", "debug", *extra),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, TZ="UTC", **(env or {})), cwd=cwd)
        wait_for(lambda: self.process.poll() is not None or self.answers(), what="mirrord")
        if self.process.poll() is not None:
            raise AssertionError(f"mirrord exited {self.process.returncode}: "
                                 f"{self.process.stderr.read()}")
        return self

    def answers(self) -> bool:
        return answers(self.socket)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def ask(self, message: dict, timeout: float | None = 10) -> dict:
        return request(str(self.socket), message, timeout=timeout)

    def status(self) -> dict:
        return self.ask({"command": "status"})["tasks"]

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, TZ="UTC"))

    def log(self) -> str:
        return self.logfile.read_text() if self.logfile.exists() else ""

    def wait_result(self, name: str, timeout: float = 20.0, after: str | None = None) -> dict:
        """Wait until *name* is idle with a result (different from *after*'s last_end)."""
        def done():
            task = self.status()[name]
            if task["state"] != "running" and task["last_result"] and task["last_end"] != after:
                return task
            return None
        return wait_for(done, timeout, what=f"{name} to finish")

    def children(self) -> list[tuple[int, str]]:
        """(pid, state letter) of the daemon's direct children, from /proc."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == self.pid:
                found.append((int(entry.name), fields[0]))
        return found

    def stop(self, timeout: float = 30) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def alive(pid: int) -> bool:
    """Whether *pid* exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# Tests that do not test the status page keep it off, so that daemons need no free port.
NO_WEB_PAGE = "[slatefish]\nenabled = 0\n"


@pytest.fixture
def mirrord(tmp_path) -> Iterator[callable]:
    """Factory: ``mirrord(config_text, *options, plugins=plugin_ini_text, env=extra_env)``
    starts a daemon in a fresh directory (``@DIR@`` in either text becomes it); all are
    stopped at the end."""
    started: list[Mirrord] = []

    def start(config: str, *extra: str, plugins: str = NO_WEB_PAGE,
              env: dict[str, str] | None = None) -> Mirrord:
        directory = tmp_path / f"d{len(started)}"
        directory.mkdir()
        (directory / "plugin.ini").write_text(plugins.replace("@DIR@", str(directory)))
        daemon = Mirrord(directory, config.replace("@DIR@", str(directory)))
        started.append(daemon)
        return daemon.start(*extra, env=env)

    yield start
    for daemon in started:
        daemon.stop()


def general(directory_marker: str = "@DIR@", **extra: str) -> str:
    """A [general] section that keeps everything inside the test's directory."""
    lines = {"loadlimit": "0", "httpconn": "0", "maxtasks": "0", "killgrace": "1s",
             "logdir": f"{directory_marker}/logs", "statefile": f"{directory_marker}/state.json"}
    lines.update(extra)
    return "[general]\n" + "".join(f"{key} = {value}\n" for key, value in lines.items())


def load_state(directory: Path) -> dict:
    return json.loads((directory / "state.json").read_text())["tasks"]


def saved_task_state(directory: Path, name: str, until) -> dict:
    """*name*'s entry in the state file, once *until* (a predicate on it) holds: the daemon
    coalesces state writes (STATE_FLUSH_SECONDS), so the file may trail the control socket."""
    def settled():
        entry = load_state(directory).get(name, {})
        return entry if until(entry) else None
    return wait_for(settled, what=f"{name}'s state to be saved")



def _background_scenarios(session: pytest.Session) -> list:
    return [mark.args[0] for item in session.items
            for mark in item.iter_markers("background")]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the scenarios of the selected tests marked ``background`` (test/integration/
    background.py): their waiting overlaps the tests that run before them."""
    for scenario in _background_scenarios(session):
        scenario.start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """End the scenarios whose test did not run (deselected, or the session stopped)."""
    for scenario in _background_scenarios(session):
        scenario.close()
