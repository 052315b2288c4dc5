# SPDX-License-Identifier: GPL-3.0-or-later
"""Knowing a run's process again, with real processes: boot, start time and run id must all
match, or mirrord leaves the process alone."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirror.procident import (
    RUN_ID_VARIABLE,
    ProcessIdentity,
    boot_id,
    owned_by,
    process_info,
    run_id_of,
)

RUN_ID = "5eed5eed5eed5eed"
SLEEP = shutil.which("sleep") or "/bin/sleep"


def state_of(pid: int) -> str | None:
    info = process_info(pid)
    return None if info is None else info.state


def wait_until(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def child() -> Iterator[subprocess.Popen]:
    """A ``sleep`` started the way mirrord starts a stage: its own session, the run's id in
    its environment."""
    process = subprocess.Popen([SLEEP, "60"], start_new_session=True,
                               env={"PATH": "/usr/bin:/bin", RUN_ID_VARIABLE: RUN_ID})
    yield process
    process.kill()
    process.wait()


def test_a_child_started_with_the_run_id_is_known_again(child):
    identity = ProcessIdentity.of(child.pid, RUN_ID)
    assert identity is not None and identity.pid == child.pid
    assert identity.boot == boot_id() and len(identity.boot) == 36  # a UUID
    assert identity.start_ticks > 0 and run_id_of(child.pid) == RUN_ID
    assert identity.matches()
    assert owned_by(child.pid, os.geteuid()) and process_info(child.pid).parent == os.getpid()
    info = process_info(child.pid)
    assert info is not None and info.parent == os.getpid() and info.state in "SR"


def test_any_difference_means_another_process(child):
    identity = ProcessIdentity.of(child.pid, RUN_ID)
    assert identity is not None and identity.matches()
    for other in (ProcessIdentity(child.pid, identity.start_ticks + 1, identity.boot, RUN_ID),
                  ProcessIdentity(child.pid, identity.start_ticks - 1, identity.boot, RUN_ID),
                  ProcessIdentity(child.pid, identity.start_ticks, "another-boot", RUN_ID),
                  ProcessIdentity(child.pid, identity.start_ticks, "", RUN_ID),
                  ProcessIdentity(child.pid, identity.start_ticks, identity.boot, "feedfeed"),
                  ProcessIdentity(child.pid, identity.start_ticks, identity.boot, "")):
        assert not other.matches(), other


def test_a_process_without_the_run_id_is_never_a_run_s(tmp_path):
    # A pid reused by a process that mirrord did not start: the same pid and start time (as
    # read now) and boot, but no MIRROR_RUN_ID in its environment.
    process = subprocess.Popen([SLEEP, "60"], start_new_session=True,
                               env={"PATH": "/usr/bin:/bin"})
    try:
        assert run_id_of(process.pid) is None
        identity = ProcessIdentity.of(process.pid, RUN_ID)
        assert identity is not None and not identity.matches()
    finally:
        process.kill()
        process.wait()
    # A real process that is not a child and was never a run: our parent.
    parent = ProcessIdentity.of(os.getppid(), RUN_ID)
    assert parent is not None and not parent.matches()


def test_a_zombie_and_a_reaped_process_do_not_match():
    process = subprocess.Popen([SLEEP, "0"], start_new_session=True,
                               env={"PATH": "/usr/bin:/bin", RUN_ID_VARIABLE: RUN_ID})
    identity = ProcessIdentity.of(process.pid, RUN_ID)
    assert identity is not None
    wait_until(lambda: state_of(process.pid) == "Z", "the child to become a zombie")
    assert process_info(process.pid).parent == os.getpid()  # a zombie: still ours to reap
    assert not identity.matches()
    assert ProcessIdentity.of(process.pid, RUN_ID) is not None  # /proc still lists it
    process.wait()
    assert process_info(process.pid) is None
    assert ProcessIdentity.of(process.pid, RUN_ID) is None
    assert not identity.matches()


def test_another_user_s_process_cannot_be_read_so_it_never_matches(child):
    identity = ProcessIdentity.of(child.pid, RUN_ID)
    assert identity is not None and identity.matches()
    if os.geteuid() != 0:
        # Our own processes are readable; someone else's environment is not.
        stranger = ProcessIdentity.of(1, RUN_ID)
        assert stranger is not None and run_id_of(1) is None and not stranger.matches()
        return
    # As root: look at root's process as another user would (a forked child that drops to
    # nobody, without exec): the environment cannot be read, so the identity never matches.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe, never returns
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            answer = f"{run_id_of(child.pid)!r} {identity.matches()!r}"
        except BaseException as problem:  # reported to the parent, which asserts
            answer = f"error {problem!r}"
        try:
            os.write(write, answer.encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        answer = os.read(read, 1000).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert answer == "None False"


def test_a_command_name_with_parentheses_and_spaces_is_read_right(tmp_path: Path):
    # /proc/PID/stat's second field is the command name in parentheses, which may itself
    # hold ") " and digits: the fields after it must still be found.
    odd = tmp_path / "a) 1 2 (b"
    shutil.copy(SLEEP, odd)
    process = subprocess.Popen([str(odd), "60"], start_new_session=True,
                               env={"PATH": "/usr/bin:/bin", RUN_ID_VARIABLE: RUN_ID})
    try:
        info = process_info(process.pid)
        assert info is not None and info.parent == os.getpid() and info.state in "SR"
        identity = ProcessIdentity.of(process.pid, RUN_ID)
        assert identity is not None and identity.matches()
        stat = Path(f"/proc/{process.pid}/stat").read_text()
        assert "(a) 1 2 (b)" in stat and int(stat.split()[21 + 3]) == info.start_ticks
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def test_no_such_process():
    assert process_info(2 ** 22 + 12345) is None  # above pid_max's largest value
    assert run_id_of(2 ** 22 + 12345) is None
    assert ProcessIdentity.of(2 ** 22 + 12345, RUN_ID) is None
    assert not ProcessIdentity(2 ** 22 + 12345, 1, boot_id(), RUN_ID).matches()


def test_a_process_that_is_not_dumpable_is_still_known_by_its_real_owner():
    """/proc/PID itself may read as root's for a process that made itself not dumpable (on
    some kernels); the owner check reads the Uid: line instead."""
    script = ("import ctypes, os, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); "
              "os.setresuid(65534, 65534, 65534) if os.geteuid() == 0 else None; "
              "print('ready', flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             env={**os.environ, RUN_ID_VARIABLE: RUN_ID})
    try:
        assert child.stdout.readline().strip() == b"ready"
        if os.geteuid() == 0:
            assert not owned_by(child.pid, 0) and owned_by(child.pid, 65534)
        else:
            assert owned_by(child.pid, os.geteuid())
    finally:
        child.kill()
        child.wait()
