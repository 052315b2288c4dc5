# SPDX-License-Identifier: GPL-3.0-or-later
"""The control protocol against a real Unix socket served by a selector loop: in a thread, or
driven step by step with a fake monotonic clock for the limits (cap, timeouts, output budget,
descriptor reserve) and the checks of request shapes."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import selectors
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from mirror import client as client_module
from mirror import fdlimits
from mirror.cli import build_parser
from mirror.control import (
    REFUSAL_REPORT_SECONDS,
    ControlServer,
    DaemonUnavailable,
    request,
    validate_request,
)
from mirror.fdlimits import DescriptorReserve, open_descriptor_count, raise_nofile_limit


@contextlib.contextmanager
def served_in_a_thread(control: ControlServer, after_each=lambda: None):
    """Bind *control* and drive it with a real selector on a thread (the daemon's loop, in
    small); *after_each* runs after every wakeup. Closed on exit."""
    control.bind()
    selector = selectors.DefaultSelector()
    control.attach(selector)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for key, mask in selector.select(0.05):
                key.data(mask)
            after_each()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield control
    finally:
        stop.set()
        thread.join()
        control.close()


@pytest.fixture
def server(tmp_path):
    path = str(tmp_path / "mirrord.sock")
    parked = []

    def handler(message, connection):
        if message["command"] == "run" and message.get("wait"):
            parked.append(connection)
            return None
        return {"ok": True, "echo": message}

    def answer_parked() -> None:
        while parked:
            parked.pop().reply({"ok": True, "result": "success"})

    with served_in_a_thread(ControlServer(path, handler), answer_parked):
        yield path
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
    reply = json.loads(raw(server, data))
    assert reply["ok"] is False and fragment in reply["error"]


def test_oversized_request_is_refused(server):
    reply = json.loads(raw(server, b"x" * (70 * 1024)))
    assert reply["ok"] is False and "longer than" in reply["error"]


def test_no_server_is_reported(tmp_path):
    with pytest.raises(DaemonUnavailable, match="no mirrord is running"):
        request(str(tmp_path / "absent.sock"), {"command": "queue"})


# --- the shape of requests ------------------------------------------------------------------

@pytest.mark.parametrize("message, fragments", [
    ("queue", ["must be a JSON object"]),
    ({}, ['no "command"', "known commands: queue, status, run, cancel"]),
    ({"name": "x"}, ['no "command"']),
    ({"command": ["run"]}, ['"command" must be a string', "queue, status, run, cancel",
                            'not ["run"]']),
    ({"command": None}, ['"command" must be a string', "not null"]),
    ({"command": "frobnicate"}, ["unknown command 'frobnicate'", "known commands"]),
    ({"command": "run"}, ['run needs "name"', "a string"]),
    ({"command": "cancel"}, ['cancel needs "name"']),
    ({"command": "run", "name": ["x"]}, ['"name" must be a string', 'not ["x"]']),
    ({"command": "cancel", "name": 3}, ['"name" must be a string', "not 3"]),
    ({"command": "run", "name": {"a": 1}}, ['"name" must be a string', 'not {"a": 1}']),
    ({"command": "run", "name": "x", "wait": "yes"}, ['"wait" must be true or false',
                                                      'not "yes"']),
    ({"command": "run", "name": "x", "wait": 1}, ['"wait" must be true or false', "not 1"]),
    ({"command": "run", "name": "x", "wait": None}, ['"wait" must be true or false']),
    ({"command": "cancel", "name": "x", "wait": True},
     ['unknown field "wait" in a cancel request', "allowed fields: command, name"]),
    ({"command": "queue", "name": "x"},
     ['unknown field "name" in a queue request', "allowed fields: command"]),
    ({"command": "status", "verbose": 1, "colour": "red"},
     ['unknown fields "verbose", "colour" in a status request', "allowed fields: command"]),
    ({"command": "run", "name": "x", "force": True},
     ['unknown field "force"', "allowed fields: command, name, wait"]),
    ({"command": "run", "name": "x" * 200}, []),
    ({"command": "run", "name": "x", "wait": ["y" * 100]}, ['"wait" must be true or false',
                                                            "…"]),
])
def test_each_wrong_field_gets_its_own_error(message, fragments):
    problem = validate_request(message)
    if not fragments:
        assert problem is None
        return
    assert problem is not None
    for fragment in fragments:
        assert fragment in problem
    assert len(problem) < 200  # a long wrong value is cut, not echoed whole


def test_plugin_dicts_with_odd_keys_do_not_raise():
    assert "unknown field 3" in validate_request({"command": "queue", 3: "x"})
    assert "must be a string" in validate_request({"command": "run", "name": object()})


@pytest.mark.parametrize("argv", [["-t"], ["-t", "--json"], ["--status"], ["--run", "debian"],
                                  ["--run", "debian", "--wait"], ["--cancel", "debian"]])
def test_every_request_the_client_sends_is_well_formed(argv, monkeypatch, tmp_path):
    sent = []

    def fake_request(path, message, timeout=10.0):
        sent.append(message)
        return {"ok": False, "error": "stop here"}

    monkeypatch.setattr(client_module, "request", fake_request)
    (tmp_path / "mirror.ini").write_text("")
    args = build_parser().parse_args(["-c", str(tmp_path), *argv])
    assert client_module.run_client(args) == 1
    assert len(sent) == 1 and validate_request(json.loads(json.dumps(sent[0]))) is None


@pytest.mark.parametrize("message", [{"command": "run", "name": "debian"}, {"command": "status"},
                                     {"command": "queue"}, {"command": "cancel", "name": "x"}])
def test_plugin_requests_are_well_formed(message):
    assert validate_request(message) is None


# --- limits, driven step by step --------------------------------------------------------------

class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A ControlServer on a real socket and a real selector, run one step at a time."""

    def __init__(self, path: str, **options) -> None:
        self.path = path
        self.clock = Clock()
        self.seen: list[dict] = []
        self.parked: list = []
        self.status_size = 100
        self.server = ControlServer(path, self.handle, monotonic=self.clock, **options)
        self.server.bind()
        self.selector = selectors.DefaultSelector()
        self.server.attach(self.selector)
        self.clients: list[socket.socket] = []

    def handle(self, message: dict, connection) -> dict | None:
        self.seen.append(message)
        if message["command"] == "run" and message.get("wait"):
            self.parked.append(connection)
            return None
        if message["command"] == "status":
            return {"ok": True, "blob": "x" * self.status_size}
        return {"ok": True, "echo": message}

    def pump(self) -> None:
        """Run the loop's handlers until nothing is ready."""
        for _round in range(10000):
            events = self.selector.select(0)
            if not events:
                return
            for key, mask in events:
                key.data(mask)
        raise AssertionError("the server never went idle")

    def connect(self, data: bytes = b"") -> socket.socket:
        client = socket.socket(socket.AF_UNIX)
        client.settimeout(5)
        client.connect(self.path)
        if data:
            client.sendall(data)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.server.close()
        self.selector.close()


def read_all(client: socket.socket) -> tuple[bytes, bool]:
    """What the server sent so far, and whether it closed the connection (never blocks)."""
    client.setblocking(False)
    data = b""
    try:
        while True:
            chunk = client.recv(1 << 20)
            if not chunk:
                return data, True
            data += chunk
    except BlockingIOError:
        return data, False
    except ConnectionResetError:
        return data, True
    finally:
        client.settimeout(5)


@pytest.fixture
def harness(tmp_path):
    made = []

    def make(**options) -> Harness:
        made.append(Harness(str(tmp_path / f"s{len(made)}.sock"), **options))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_a_malformed_request_never_reaches_the_handler(harness):
    loop = harness()
    client = loop.connect(b'{"command": "run", "name": ["x"]}\n')
    loop.pump()
    data, closed = read_all(client)
    reply = json.loads(data)
    assert reply["ok"] is False and '"name" must be a string' in reply["error"]
    assert closed and loop.seen == []


def test_connections_over_the_cap_are_closed_at_once_and_logged_once_a_minute(harness, caplog):
    caplog.set_level(logging.WARNING, logger="mirror.control")
    loop = harness(max_connections=3)
    held = [loop.connect() for _ in range(3)]
    loop.pump()
    assert len(loop.server.connections) == 3
    refused = [loop.connect(b'{"command": "queue"}\n') for _ in range(10)]
    loop.pump()
    for client in refused:
        data, closed = read_all(client)
        assert closed and "mirrord is busy" in json.loads(data)["error"]
    assert all(read_all(client) == (b"", False) for client in held)
    reports = [record.getMessage() for record in caplog.records]
    assert len(reports) == 1 and "turned away 1 clients" in reports[0]
    assert "3 connections open already" in reports[0]
    # The other nine are counted, and reported once the minute is over, by expire().
    due = loop.clock.now + REFUSAL_REPORT_SECONDS
    assert loop.server.next_deadline() == min(due, loop.clock.now + 10.0)
    loop.clock.now += 9.0
    loop.server.expire(loop.clock.now)
    assert len(caplog.records) == 1
    loop.clock.now = due
    loop.server.expire(loop.clock.now)
    assert [record.getMessage() for record in caplog.records][1].startswith(
        "control socket: turned away 9 clients")
    assert loop.server.next_deadline() is None  # all idle ones expired, nothing to report


def test_a_request_line_must_come_within_the_request_timeout(harness):
    loop = harness(request_timeout=10.0)
    start = loop.clock.now
    silent = loop.connect()
    slow = loop.connect(b'{"command": "que')
    loop.pump()
    assert loop.server.next_deadline() == start + 10.0
    loop.clock.now = start + 9.9
    loop.server.expire(loop.clock.now)
    assert len(loop.server.connections) == 2
    loop.clock.now = start + 10.0
    loop.server.expire(loop.clock.now)
    assert loop.server.connections == set() and loop.server.next_deadline() is None
    assert read_all(silent) == (b"", True) and read_all(slow) == (b"", True)


def test_a_request_sent_while_the_loop_was_busy_is_answered_not_expired(harness):
    loop = harness(request_timeout=10.0)
    start = loop.clock.now
    client, partial = loop.connect(), loop.connect()
    loop.pump()  # accepted: their deadlines run from now
    client.sendall(b'{"command": "queue"}\n')
    partial.sendall(b'{"command": "que')
    # The loop was busy for 30 s (a reload of many tasks, say) and did not read them.
    loop.clock.now = start + 30.0
    loop.server.expire(loop.clock.now)
    data, closed = read_all(client)
    assert closed and json.loads(data)["echo"] == {"command": "queue"}
    assert read_all(partial) == (b"", True)  # its request was not whole: too slow
    assert loop.server.connections == set()


def test_a_reply_must_be_read_within_the_write_timeout(harness):
    loop = harness(write_timeout=10.0)
    loop.status_size = 4 * 1024 * 1024  # far more than the kernel's socket buffers take
    client = loop.connect(b'{"command": "status"}\n')
    loop.clock.now += 3.0
    loop.pump()
    (connection,) = loop.server.connections
    assert connection.phase == "writing" and loop.server.buffered > 0
    assert loop.server.next_deadline() == loop.clock.now + 10.0
    loop.clock.now += 10.0
    loop.server.expire(loop.clock.now)
    assert loop.server.connections == set() and loop.server.buffered == 0
    data, closed = read_all(client)
    assert closed and not data.endswith(b"\n")  # cut off: it did not read in time


def test_a_reader_gets_its_whole_large_reply(harness):
    loop = harness()
    loop.status_size = 3 * 1024 * 1024
    client = loop.connect(b'{"command": "status"}\n')
    received = b""
    while not received.endswith(b"\n"):
        loop.pump()
        data, _closed = read_all(client)
        received += data
    assert len(json.loads(received)["blob"]) == loop.status_size
    loop.pump()
    assert loop.server.connections == set() and loop.server.buffered == 0


def test_parked_connections_have_no_deadline_but_count_toward_the_cap(harness):
    loop = harness(max_connections=1)
    waiter = loop.connect(b'{"command": "run", "name": "x", "wait": true}\n')
    loop.pump()
    assert len(loop.parked) == 1 and loop.server.next_deadline() is None
    loop.clock.now += 5 * 3600.0  # a sync of five hours
    loop.server.expire(loop.clock.now)
    assert len(loop.server.connections) == 1
    other = loop.connect(b'{"command": "queue"}\n')
    loop.pump()
    data, closed = read_all(other)
    assert closed and "mirrord is busy" in data.decode()
    loop.parked.pop().reply({"ok": True, "result": "success"})
    loop.pump()
    data, closed = read_all(waiter)
    assert closed and json.loads(data) == {"ok": True, "result": "success"}
    assert loop.server.connections == set()


def test_a_parked_client_that_goes_away_is_closed(harness):
    loop = harness()
    waiter = loop.connect(b'{"command": "run", "name": "x", "wait": true}\n')
    loop.pump()
    waiter.close()
    loop.pump()
    assert loop.server.connections == set()
    loop.parked.pop().reply({"ok": True})  # the run ends later: nothing breaks


def test_replies_over_the_output_budget_get_a_short_busy_error(harness, caplog):
    caplog.set_level(logging.WARNING, logger="mirror.control")
    loop = harness(output_budget=1024 * 1024)
    loop.status_size = 600 * 1024
    first = loop.connect(b'{"command": "status"}\n')
    loop.pump()
    held = loop.server.buffered
    assert 0 < held <= 1024 * 1024
    second = loop.connect(b'{"command": "status"}\n')
    small = loop.connect(b'{"command": "run", "name": "x"}\n')  # small replies still go out
    loop.pump()
    data, closed = read_all(second)
    assert closed and json.loads(data) == {
        "ok": False, "error": "mirrord is busy: replies to other clients are still waiting "
                              "to be read; try again later"}
    data, closed = read_all(small)
    assert closed and json.loads(data)["ok"] is True
    assert loop.server.buffered == held
    assert "reply over the output budget" in caplog.text
    # Once the first client has read its reply, the budget is free again.
    received = b""
    while not received.endswith(b"\n"):
        loop.pump()
        received += read_all(first)[0]
    loop.pump()
    assert loop.server.buffered == 0
    third = loop.connect(b'{"command": "status"}\n')
    received = b""
    while not received.endswith(b"\n"):
        loop.pump()
        received += read_all(third)[0]
    assert json.loads(received)["ok"] is True


def test_a_spent_budget_answers_status_without_asking_the_handler(harness):
    loop = harness(output_budget=100 * 1024)
    loop.status_size = 90 * 1024 + 300 * 1024  # held in part, beyond what the kernel takes
    loop.connect(b'{"command": "status"}\n')
    loop.pump()
    loop.server.buffered = loop.server.output_budget  # as if many slow readers were served
    asked = len(loop.seen)
    late = loop.connect(b'{"command": "queue"}\n')
    loop.pump()
    assert "mirrord is busy" in read_all(late)[0].decode() and len(loop.seen) == asked


def test_a_reply_larger_than_the_whole_budget_is_refused(harness):
    loop = harness(output_budget=64 * 1024)
    loop.status_size = 65 * 1024
    client = loop.connect(b'{"command": "status"}\n')
    loop.pump()
    data, closed = read_all(client)
    assert closed and "mirrord is busy" in json.loads(data)["error"]


def test_connections_are_refused_when_the_descriptor_reserve_would_be_touched(harness):
    limit = [0]
    loop = harness(descriptors=DescriptorReserve(4, soft_limit=lambda: limit[0]))
    # Room for exactly one more client: its two ends (both in this process) and 4 to spare.
    limit[0] = open_descriptor_count() + 6
    first = loop.connect()
    loop.pump()
    assert len(loop.server.connections) == 1
    second = loop.connect(b'{"command": "queue"}\n')
    loop.pump()
    data, closed = read_all(second)
    assert closed and "mirrord is busy" in data.decode()
    assert len(loop.server.connections) == 1 and read_all(first) == (b"", False)


def test_the_descriptor_number_alone_can_refuse():
    counted = []
    reserve = DescriptorReserve(10, soft_limit=lambda: 100,
                                count_open=lambda: counted.append(1) or 5)
    assert reserve.allows(80) and counted == [1]
    assert not reserve.allows(90) and counted == [1]  # descriptors 0-90 are open: no count
    assert not DescriptorReserve(10, soft_limit=lambda: 100, count_open=lambda: 95).allows(3)
    assert DescriptorReserve(10, soft_limit=lambda: 100, count_open=lambda: None).allows(3)


def test_open_descriptor_count_matches_proc():
    listed = len(os.listdir("/proc/self/fd")) - 1
    assert open_descriptor_count() == listed


def test_accept_failing_pauses_and_retries_after_a_second(harness):
    loop = harness(descriptors=DescriptorReserve(0))
    waiting = loop.connect(b'{"command": "queue"}\n')
    lowest_free = os.dup(0)
    os.close(lowest_free)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # not one descriptor left
    try:
        loop.pump()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert loop.server.paused and loop.server.connections == set()
    assert loop.server.next_deadline() == loop.clock.now + 1.0
    loop.pump()
    assert read_all(waiting) == (b"", False)  # not listening: still queued, no spinning
    loop.clock.now += 1.0
    loop.server.expire(loop.clock.now)
    loop.pump()
    data, closed = read_all(waiting)
    assert closed and json.loads(data)["ok"] is True and not loop.server.paused


def test_closing_flushes_pending_replies_within_one_total_deadline(harness):
    loop = harness()
    loop.status_size = 4 * 1024 * 1024
    for _ in range(3):
        loop.connect(b'{"command": "status"}\n')
    loop.pump()
    assert len(loop.server.connections) == 3
    started = time.monotonic()
    loop.server.close(flush_seconds=0.5)
    assert time.monotonic() - started < 1.2  # 0.5 s in all, not 0.5 s for each client
    assert loop.server.connections == set() and loop.server.buffered == 0


def test_the_client_reads_the_busy_reply_of_a_full_server(tmp_path):
    path = str(tmp_path / "full.sock")
    control = ControlServer(path, lambda message, connection: {"ok": True},
                            max_connections=0)
    with served_in_a_thread(control):
        for _ in range(20):
            reply = request(path, {"command": "queue"}, timeout=5)
            assert reply["ok"] is False and "mirrord is busy" in reply["error"]


def test_a_client_waits_for_room_in_a_full_queue_then_gives_up(tmp_path):
    path = str(tmp_path / "stuck.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen(0)
        queued = []
        for _ in range(3):  # fill the queue; nobody accepts
            client = socket.socket(socket.AF_UNIX)
            client.setblocking(False)
            try:
                client.connect(path)
            except BlockingIOError:
                client.close()
                break
            queued.append(client)
        started = time.monotonic()
        with pytest.raises(DaemonUnavailable, match="mirrord is busy"):
            request(path, {"command": "queue"}, timeout=0.3)
        assert 0.25 < time.monotonic() - started < 2
        for client in queued:
            client.close()


# --- raising the limit on open files ----------------------------------------------------------

def test_raise_nofile_limit_lifts_the_soft_limit_to_the_hard_one():
    # In a child: the test process keeps its own limits.
    script = ("import json, resource; from mirror.fdlimits import raise_nofile_limit;"
              "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE);"
              "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard));"
              "print(json.dumps([hard, raise_nofile_limit(),"
              " resource.getrlimit(resource.RLIMIT_NOFILE)]))")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=root)
    hard, returned, in_force = json.loads(result.stdout)
    assert returned == in_force
    if hard != resource.RLIM_INFINITY:
        assert in_force == [hard, hard]
    else:
        assert in_force[0] > 256


def test_raise_nofile_limit_never_fails(monkeypatch, caplog):
    calls = []

    def refuse(which, limits):
        calls.append(limits)
        raise ValueError("not allowed")

    monkeypatch.setattr(fdlimits.resource, "getrlimit", lambda which: (512, 4096))
    monkeypatch.setattr(fdlimits.resource, "setrlimit", refuse)
    assert raise_nofile_limit() == (512, 4096)
    assert calls == [(4096, 4096)] and "cannot raise the limit on open files" in caplog.text


def test_raise_nofile_limit_with_an_unlimited_hard_limit_stops_at_nr_open(monkeypatch):
    infinity = fdlimits.resource.RLIM_INFINITY
    limits = [(1024, infinity)]
    monkeypatch.setattr(fdlimits.resource, "getrlimit", lambda which: limits[-1])
    monkeypatch.setattr(fdlimits.resource, "setrlimit", lambda which, new: limits.append(new))
    monkeypatch.setattr(fdlimits, "_nr_open", lambda: 1048576)
    assert raise_nofile_limit() == (1048576, infinity)
    limits[:] = [(8192, 8192)]
    assert raise_nofile_limit() == (8192, 8192) and limits == [(8192, 8192)]
