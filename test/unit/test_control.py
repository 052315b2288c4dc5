# SPDX-License-Identifier: GPL-3.0-or-later
"""The control protocol against a real Unix socket served by a selector loop in a thread."""
from __future__ import annotations

import os
import selectors
import socket
import stat
import threading

import pytest

from mirror.control import ControlServer, DaemonUnavailable, request


@pytest.fixture
def server(tmp_path):
    path = str(tmp_path / "mirrord.sock")
    parked = []

    def handler(message, connection):
        if message["command"] == "run" and message.get("wait"):
            parked.append(connection)
            return None
        return {"ok": True, "echo": message}

    control = ControlServer(path, handler)
    control.bind()
    selector = selectors.DefaultSelector()
    control.attach(selector)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            for key, mask in selector.select(0.05):
                key.data(mask)
            while parked:
                parked.pop().reply({"ok": True, "result": "success"})

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()
    control.close()
    assert not os.path.exists(path)


def raw(path: str, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(path)
        client.sendall(data)
        received = b""
        while not received.endswith(b"\n"):
            chunk = client.recv(4096)
            if not chunk:
                break
            received += chunk
        return received


def test_socket_is_private(server):
    assert stat.S_IMODE(os.stat(server).st_mode) == 0o600


def test_requests_and_parked_replies(server):
    assert request(server, {"command": "queue"}) == {"ok": True, "echo": {"command": "queue"}}
    assert request(server, {"command": "run", "name": "x", "wait": True}) == {
        "ok": True, "result": "success"}


@pytest.mark.parametrize("data, fragment", [
    (b"not json\n", "not a JSON object on one line"),
    (b"[1, 2]\n", "must be a JSON object"),
    (b'{"command": "explode"}\n', "unknown command 'explode'; known commands: queue, status"),
    (b"\xff\xfe\n", "not a JSON object"),
    (b"[" * 60000 + b"\n", "not a JSON object"),
])
def test_bad_requests_get_clear_errors(server, data, fragment):
    import json

    reply = json.loads(raw(server, data))
    assert reply["ok"] is False and fragment in reply["error"]


def test_oversized_request_is_refused(server):
    import json

    reply = json.loads(raw(server, b"x" * (70 * 1024)))
    assert reply["ok"] is False and "longer than" in reply["error"]


def test_no_server_is_reported(tmp_path):
    with pytest.raises(DaemonUnavailable, match="no mirrord is running"):
        request(str(tmp_path / "absent.sock"), {"command": "queue"})
