# SPDX-License-Identifier: GPL-3.0-or-later
"""mirror.reexec: the handover between two images of mirrord, and a failed exec."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys

import pytest

from mirror.reexec import (
    HANDOVER_VARIABLE,
    Handover,
    HandoverError,
    Restarter,
    adopt_socket,
    hold_signals,
    image_argv,
)
from mirror.signals import HANDLED


@pytest.fixture
def descriptors(tmp_path):
    """A listening Unix socket and three open files, as mirrord holds them."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "sock"))
    listener.listen()
    files = [os.open(tmp_path / name, os.O_RDWR | os.O_CREAT) for name in ("pid", "lock", "log")]
    yield listener, files
    listener.close()
    for fd in files:
        os.close(fd)


def handover_of(listener, files, tmp_path, **changes) -> Handover:
    values = dict(pid=os.getpid(), control=listener.fileno(), pidfile=files[0],
                  state_lock=files[1], log=files[2], log_path=str(tmp_path / "log"),
                  cwd=str(tmp_path))
    values.update(changes)
    return Handover(**values)


def test_a_handover_comes_through_the_environment_and_leaves_it(descriptors, tmp_path):
    listener, files = descriptors
    handover = handover_of(listener, files, tmp_path)
    environ = {HANDOVER_VARIABLE: handover.encode(), "PATH": "/bin"}
    for fd in handover.descriptors():
        os.set_inheritable(fd, True)
    assert Handover.take(environ) == handover
    assert environ == {"PATH": "/bin"}  # the syncs do not inherit it
    assert not any(os.get_inheritable(fd) for fd in handover.descriptors())
    assert Handover.take({"PATH": "/bin"}) is None


@pytest.mark.parametrize("change, message", [
    ({"pid": 1}, "meant for process 1"),
    ({"control": 9999}, "control socket handed over (descriptor 9999) is not open"),
    ({"log": 9999}, "log handed over (descriptor 9999) is not open"),
])
def test_a_handover_for_another_process_or_with_closed_descriptors_is_refused(
        descriptors, tmp_path, change, message):
    listener, files = descriptors
    environ = {HANDOVER_VARIABLE: handover_of(listener, files, tmp_path, **change).encode()}
    with pytest.raises(HandoverError, match=re.escape(message)):
        Handover.take(environ)


def test_a_handover_whose_control_socket_is_a_file_is_refused(descriptors, tmp_path):
    listener, files = descriptors
    environ = {HANDOVER_VARIABLE: handover_of(listener, files, tmp_path,
                                              control=files[2]).encode()}
    with pytest.raises(HandoverError, match=r"control socket .* is not what it should be"):
        Handover.take(environ)


@pytest.mark.parametrize("text", ["not json", "[]", json.dumps({"pid": "1"}),
                                  json.dumps({"pid": True, "control": 3})])
def test_a_damaged_handover_is_refused_with_the_variable_named(text):
    with pytest.raises(HandoverError, match=f"\\${HANDOVER_VARIABLE} is not a handover"):
        Handover.take({HANDOVER_VARIABLE: text})


def test_a_failed_exec_leaves_the_image_as_it_was(descriptors, tmp_path, monkeypatch):
    listener, files = descriptors
    monkeypatch.chdir("/")
    handover = handover_of(listener, files, tmp_path)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    failure = Restarter([str(tmp_path / "no-such-python")], "/", lambda: handover).execute({})
    assert isinstance(failure, FileNotFoundError)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    assert not set(HANDLED) & signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert not any(os.get_inheritable(fd) for fd in handover.descriptors())
    assert os.getcwd() == "/"


def test_the_preflight_reports_why_the_new_code_did_not_start(descriptors, tmp_path):
    listener, files = descriptors
    handover = handover_of(listener, files, tmp_path)
    script = "import sys; print('half a start'); sys.exit('ImportError: broken by the test')"
    failed = Restarter([sys.executable, "-c", script], str(tmp_path),
                       lambda: handover).preflight(os.environ)
    assert failed is not None and "exit 1" in failed and "broken by the test" in failed
    missing = Restarter([str(tmp_path / "gone")], str(tmp_path),
                        lambda: handover).preflight(os.environ)
    assert missing is not None and "cannot run" in missing
    said = "import os; print('mirrord-preflight-ok', os.environ['MIRRORD_PREFLIGHT'])"
    assert Restarter([sys.executable, "-c", said], str(tmp_path), lambda: handover).preflight(
        {"PATH": os.environ.get("PATH", "/bin")}) is None


def test_the_new_image_is_started_the_way_this_one_was():
    argv = image_argv()
    assert argv[0] == sys.executable
    assert argv[1:] == list(getattr(sys, "orig_argv", [sys.executable, *sys.argv])[1:])


def test_only_a_listening_unix_stream_socket_is_adopted(descriptors):
    listener, _files = descriptors
    assert adopt_socket(os.dup(listener.fileno())).family == socket.AF_UNIX
    datagram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with pytest.raises(HandoverError, match="not a Unix stream socket"):
        adopt_socket(datagram.fileno())
    datagram.close()


def test_held_signals_stay_pending_until_the_mask_is_restored():
    received: list[int] = []
    previous_handler = signal.signal(signal.SIGHUP, lambda signum, _frame: received.append(signum))
    try:
        previous = hold_signals(lambda: [signal.SIGHUP, signal.SIGHUP])
        try:
            assert set(HANDLED) <= signal.pthread_sigmask(signal.SIG_BLOCK, [])
            assert signal.SIGHUP in signal.sigpending()  # survives an exec: the pipe would not
            assert received == []
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        assert received == [signal.SIGHUP]
    finally:
        signal.signal(signal.SIGHUP, previous_handler)
