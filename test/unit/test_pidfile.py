# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mirror.pidfile import AlreadyRunning, ForgedPidFile, PidFile, locked_pid, read_pid

HOLDER = """
import sys, time
from mirror.pidfile import PidFile
lock = PidFile(sys.argv[1]); lock.acquire(); lock.write(int(sys.argv[2]))
print("held", flush=True); time.sleep(60)
"""


def test_lock_write_release(tmp_path):
    path = str(tmp_path / "mirrord.pid")
    lock = PidFile(path)
    lock.acquire()
    lock.write(os.getpid())
    assert read_pid(path) == os.getpid()
    lock.release()
    assert not os.path.exists(path)
    assert locked_pid(path) is None


def test_a_held_lock_refuses_a_second_owner(tmp_path):
    path = str(tmp_path / "mirrord.pid")
    holder = start_holder(path)
    try:
        assert locked_pid(path) == holder.pid
        with pytest.raises(AlreadyRunning, match=rf"already running \(pid {holder.pid}"):
            PidFile(path).acquire()
    finally:
        holder.kill()
        holder.wait()
    # Killed with SIGKILL: the file stays, but nobody holds it, so it is stale.
    assert read_pid(path) == holder.pid and locked_pid(path) is None
    lock = PidFile(path)
    lock.acquire()
    lock.release()


def start_holder(path: str, pid: int = 0) -> subprocess.Popen:
    """A process that locks *path* and writes *pid* (its own by default) into it."""
    written = str(pid) if pid else "os.getpid()"
    script = HOLDER.replace("int(sys.argv[2])", written).replace("import sys", "import os, sys")
    holder = subprocess.Popen([sys.executable, "-c", script, path], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_locked_pidfile_naming_another_process_is_not_believed(tmp_path):
    # The owner of the pidfile's directory holds the lock and writes pid 1 into the file:
    # root's `mirrord -s stop` must not send SIGTERM to init.
    path = str(tmp_path / "mirrord.pid")
    holder = start_holder(path, pid=1)
    try:
        with pytest.raises(ForgedPidFile, match="names pid 1, which does not hold it"):
            locked_pid(path)
    finally:
        holder.kill()
        holder.wait()


def test_read_pid_tolerates_garbage(tmp_path):
    path = tmp_path / "pid"
    path.write_text("not a pid")
    assert read_pid(str(path)) is None
    assert read_pid(str(tmp_path / "missing")) is None
