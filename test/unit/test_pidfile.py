# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mirror.pidfile import AlreadyRunning, PidFile, locked_pid, read_pid

HOLDER = """
import sys, time
from mirror.pidfile import PidFile
lock = PidFile(sys.argv[1]); lock.acquire(); lock.write(4242)
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
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert locked_pid(path) == 4242
        with pytest.raises(AlreadyRunning, match=r"already running \(pid 4242"):
            PidFile(path).acquire()
    finally:
        holder.kill()
        holder.wait()
    # Killed with SIGKILL: the file stays, but nobody holds it, so it is stale.
    assert read_pid(path) == 4242 and locked_pid(path) is None
    lock = PidFile(path)
    lock.acquire()
    lock.release()


def test_read_pid_tolerates_garbage(tmp_path):
    path = tmp_path / "pid"
    path.write_text("not a pid")
    assert read_pid(str(path)) is None
    assert read_pid(str(tmp_path / "missing")) is None
