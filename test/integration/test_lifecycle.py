# SPDX-License-Identifier: GPL-3.0-or-later
"""Starting and running the daemon: detaching, privileges, logs, profiling."""
from __future__ import annotations

import errno
import os
import pstats
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mirror.lifecycle import REOPEN_CHECK_SECONDS
from mirror.pidfile import read_pid
from test.integration.conftest import alive, answers, general, wait_for

QUICK = "[quick]\ntype = simple\ncommand = sh\nargs = -c 'id -u > \"$0\"' @DIR@/whoami\n" \
        "time = 0 0 1 1 *\n"


def mirrord_command(directory: Path, *args: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "mirror", "-c", str(directory), "-P",
            str(directory / "mirrord.pid"), *args]


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_plain_mirrord_detaches(tmp_path):
    (tmp_path / "mirror.ini").write_text(general().replace("@DIR@", str(tmp_path)))
    log = tmp_path / "mirrord.log"
    started = subprocess.run(mirrord_command(tmp_path, "-l", str(log)), capture_output=True,
                             text=True, timeout=30)
    assert started.returncode == 0, started.stderr
    pid = wait_for(lambda: read_pid(str(tmp_path / "mirrord.pid")), what="the pidfile")
    try:
        assert alive(pid)
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        assert proc_status(pid)["Umask"] == "0022"
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"
        assert os.getsid(pid) != os.getsid(0)
        wait_for(lambda: "mirrord started" in log.read_text(), what="the start line")
    finally:
        stopped = subprocess.run(mirrord_command(tmp_path, "-s", "stop"), capture_output=True,
                                 text=True, timeout=60)
    assert stopped.returncode == 0 and not alive(pid)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_and_group_switch_after_setup(shared_dir, python_for_users):
    tmp_path = shared_dir
    nobody = pwd.getpwnam("nobody")
    config = general().replace("@DIR@", str(tmp_path)) + QUICK.replace("@DIR@", str(tmp_path))
    (tmp_path / "mirror.ini").write_text(config)
    daemon = subprocess.Popen(mirrord_command(tmp_path, "-D", "-l", str(tmp_path / "log"),
                                              "-u", "nobody", "-g", "nogroup",
                                              python=python_for_users),
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: answers(tmp_path / "mirrord.sock"), what="the daemon")
        wait_for(lambda: proc_status(daemon.pid)["Uid"].split()[0] == str(nobody.pw_uid),
                 what="the switch to nobody")
        status = proc_status(daemon.pid)
        assert status["Uid"].split() == [str(nobody.pw_uid)] * 4
        assert (tmp_path / "mirrord.sock").stat().st_uid == nobody.pw_uid
        run = subprocess.run(mirrord_command(tmp_path, "--run", "quick", "--wait"),
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        assert (tmp_path / "whoami").read_text().strip() == str(nobody.pw_uid)
    finally:
        daemon.terminate()
        assert daemon.wait(30) == 0


@pytest.fixture
def shared_dir():
    """A directory every user can reach and write, like a RuntimeDirectory given to the user."""
    path = Path(tempfile.mkdtemp(prefix="mirrord-test-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_switching_to_a_user_who_cannot_write_is_refused(tmp_path, python_for_users):
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    (tmp_path / "mirror.ini").write_text(general().replace("@DIR@", str(tmp_path)))
    result = subprocess.run(mirrord_command(tmp_path, "-D", "-l", str(tmp_path / "log"),
                                            "-u", "nobody", python=python_for_users),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"cannot create the pidfile directory {tmp_path}: Permission denied" \
        in result.stderr
    # mirrord never chowns a directory itself: it says what to run.
    assert f"as root, run: install -d -o nobody -g nogroup {tmp_path}" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_interpreter_the_user_cannot_read_is_a_clear_error(tmp_path, python_for_users):
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    if python_for_users == sys.executable:
        pytest.skip(f"{sys.executable} is readable by every user here")
    (tmp_path / "mirror.ini").write_text(general().replace("@DIR@", str(tmp_path)))
    result = subprocess.run(mirrord_command(tmp_path, "-D", "-l", str(tmp_path / "log"),
                                            "-u", "nobody"), capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert "Python's files in" in result.stderr and "cannot be read" in result.stderr
    assert "Traceback" not in result.stderr


def test_switching_users_without_the_capabilities_is_a_clear_error(tmp_path):
    """As under a hardened systemd unit (CapabilityBoundingSet=): no traceback."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv (util-linux)")
    (tmp_path / "mirror.ini").write_text(general().replace("@DIR@", str(tmp_path)))
    (tmp_path / "plugin.ini").write_text("[slatefish]\nenabled = 0\n")
    result = subprocess.run(
        [setpriv, "--inh-caps=-all", "--bounding-set=-setuid,-setgid,-chown,-fowner",
         *mirrord_command(tmp_path, "-D", "-l", str(tmp_path / "log"), "-u", "nobody")],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "mirrord: cannot switch to the user and group of -u and -g:" in result.stderr
    assert "Traceback" not in result.stderr


def test_log_reopens_after_logrotate_and_truncates_unless_r(tmp_path):
    config = general().replace("@DIR@", str(tmp_path)) + QUICK.replace("@DIR@", str(tmp_path))
    (tmp_path / "mirror.ini").write_text(config)
    log = tmp_path / "mirrord.log"
    log.write_text("old line\n")
    daemon = subprocess.Popen(mirrord_command(tmp_path, "-D", "-l", str(log)),
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: answers(tmp_path / "mirrord.sock"), what="the daemon")
        assert "old line" not in log.read_text()
        log.rename(tmp_path / "mirrord.log.1")
        time.sleep(REOPEN_CHECK_SECONDS + 0.1)  # the path is checked once a second
        subprocess.run(mirrord_command(tmp_path, "--run", "quick", "--wait"), check=True,
                       capture_output=True, timeout=30)
        wait_for(lambda: log.exists() and "quick: success" in log.read_text(),
                 what="a new log file")
        assert "quick: success" not in (tmp_path / "mirrord.log.1").read_text()
    finally:
        daemon.terminate()
        daemon.wait(30)
    again = subprocess.Popen(mirrord_command(tmp_path, "-D", "-r", "-l", str(log)),
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: log.read_text().count("mirrord started") == 1, what="the restart")
        assert "quick: success" in log.read_text()
    finally:
        again.terminate()
        again.wait(30)


def test_quiet_writes_no_log_and_profile_is_written_on_exit(tmp_path):
    config = general().replace("@DIR@", str(tmp_path)) + QUICK.replace("@DIR@", str(tmp_path))
    (tmp_path / "mirror.ini").write_text(config)
    log = tmp_path / "mirrord.log"
    daemon = subprocess.Popen(mirrord_command(tmp_path, "-D", "-q", "-l", str(log),
                                              "--profile"), stderr=subprocess.PIPE, text=True)
    wait_for(lambda: answers(tmp_path / "mirrord.sock"), what="the daemon")
    daemon.terminate()
    assert daemon.wait(30) == 0
    assert not log.exists() and daemon.stderr.read() == ""
    stats = pstats.Stats(str(tmp_path / "mirrord.profile"))
    assert stats.total_calls > 0


def test_signal_handlers_are_in_place_before_the_socket_exists(tmp_path, monkeypatch):
    """A reload sent the moment the socket (or the pidfile) appears must reach the loop: the
    default action of SIGHUP would end the daemon."""
    from mirror.config import load_config
    from mirror.control import ControlServer
    from mirror.lifecycle import DaemonOptions, StartupError, run_daemon
    from mirror.locations import locate_config

    (tmp_path / "mirror.ini").write_text(general().replace("@DIR@", str(tmp_path)))
    location = locate_config(str(tmp_path))
    seen = {}

    def bind(server):
        seen["SIGHUP"] = signal.getsignal(signal.SIGHUP)
        seen["SIGTERM"] = signal.getsignal(signal.SIGTERM)
        raise OSError(errno.EACCES, "refused by the test")

    monkeypatch.setattr(ControlServer, "bind", bind)
    options = DaemonOptions(foreground=True, logfile=str(tmp_path / "mirrord.log"),
                            pidfile=str(tmp_path / "mirrord.pid"))
    with pytest.raises(StartupError, match="refused by the test"):
        run_daemon(location, load_config(location), options)
    assert seen["SIGHUP"] not in (signal.SIG_DFL, signal.SIG_IGN, None)
    assert seen["SIGTERM"] not in (signal.SIG_DFL, signal.SIG_IGN, None)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL  # restored after the failure


def test_a_reload_as_soon_as_the_socket_appears_is_a_reload(tmp_path):
    (tmp_path / "mirror.ini").write_text(general().replace("@DIR@", str(tmp_path)))
    log = tmp_path / "mirrord.log"
    daemon = subprocess.Popen(mirrord_command(tmp_path, "-D", "-l", str(log)),
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (tmp_path / "mirrord.sock").exists(), interval=0.0005,
                 what="the control socket")
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded:" in log.read_text(), what="the reload")
        assert daemon.poll() is None
    finally:
        daemon.terminate()
        daemon.wait(30)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_restart_after_switching_users_keeps_the_user_and_the_sync(shared_dir, python_for_users):
    """The new image is started with the same -u and -g, by a process that is no longer
    root: it must not try to switch again."""
    tmp_path = shared_dir
    nobody = pwd.getpwnam("nobody")
    config = general().replace("@DIR@", str(tmp_path)) + (
        "[long]\ntype = simple\ncommand = /bin/sleep\nargs = 300\ntime = 0 0 1 1 *\n")
    (tmp_path / "mirror.ini").write_text(config)
    daemon = subprocess.Popen(mirrord_command(tmp_path, "-D", "-l", str(tmp_path / "log"),
                                              "-u", "nobody", "-g", "nogroup",
                                              python=python_for_users),
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: answers(tmp_path / "mirrord.sock"), what="the daemon")
        started = subprocess.run(mirrord_command(tmp_path, "--run", "long"),
                                 capture_output=True, text=True, timeout=30)
        assert started.returncode == 0, started.stderr
        sleeper = int(started.stdout.split()[-1])
        restarted = subprocess.run(mirrord_command(tmp_path, "-s", "restart"),
                                   capture_output=True, text=True, timeout=150)
        assert restarted.returncode == 0, (restarted.stderr, (tmp_path / "log").read_text())
        assert daemon.poll() is None and alive(sleeper)
        assert proc_status(daemon.pid)["Uid"].split() == [str(nobody.pw_uid)] * 4
        assert "took over its run in progress" in (tmp_path / "log").read_text()
    finally:
        daemon.terminate()
        assert daemon.wait(30) == 0
