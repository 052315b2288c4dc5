# SPDX-License-Identifier: GPL-3.0-or-later
"""The status page's HTTP server under slow and greedy clients, with real sockets.

The limits: a deadline for the whole request head (408), a cap per address (429) and in all
(503), a bounded number of workers that slow clients never hold, and no wakeups while idle.
(test_slatefish_page.py has the basics; test/security/test_status_slowloris.py the attack.)
"""
from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from mirror.plugins.slatefish import server as server_module
from mirror.plugins.slatefish.server import HttpServer, Response, address_group
from test.rawhttp import raw_request

REQUEST = b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def ok(method: str, path: str) -> Response:
    return Response(200, f"{method} {path}".encode())


@pytest.fixture
def serve() -> Iterator:
    """Factory: ``serve(application=ok, **options)`` starts an HttpServer on 127.0.0.1 and
    gives its port; every server is stopped at the end."""
    started: list[HttpServer] = []

    def start(application=ok, **options) -> int:
        server = HttpServer(("127.0.0.1", 0), application, **options)
        server.start()
        started.append(server)
        return server.bound[1]

    yield start
    for server in started:
        server.stop()


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def read_all(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def get(port: int, source: str = "127.0.0.1", request: bytes = REQUEST) -> bytes:
    with connect(port, source) as sock:
        sock.sendall(request)
        return read_all(sock)


def until(predicate, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# --- the head deadline ------------------------------------------------------------------

def test_a_head_not_complete_by_the_deadline_gets_408(serve):
    port = serve(head_timeout=1.0, timeout=5.0)
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        sock.settimeout(0.2)
        answer = b""
        while not answer:  # keeps sending, never too slowly for the 5 s silence limit
            try:
                answer = sock.recv(65536)
            except socket.timeout:
                sock.sendall(b"X: y\r\n")
        took = time.monotonic() - started
        sock.settimeout(5)
        answer += read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Connection: close\r\n" in answer and answer.endswith(b"within 1 s\n")
    assert 0.95 <= took < 1.6


def test_a_client_that_sends_nothing_is_closed_at_the_deadline_without_an_answer(serve):
    port = serve(head_timeout=1.0, timeout=5.0)
    with connect(port) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""  # as a browser's unused speculative connection expects
        assert 0.95 <= time.monotonic() - started < 1.6


def test_a_head_split_across_many_slow_sends_is_answered_before_the_deadline(serve):
    port = serve(head_timeout=2.0, timeout=1.0)
    request = b"GET /slowly HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\n\r\n"
    with connect(port) as sock:
        started = time.monotonic()
        for byte in range(len(request)):  # 55 sends over about 1.4 s
            sock.sendall(request[byte:byte + 1])
            time.sleep(0.025)
        answer = read_all(sock)
    assert time.monotonic() - started < 2.0
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"GET /slowly")


def test_the_deadline_counts_from_connecting_not_from_the_last_byte(serve):
    port = serve(head_timeout=1.0, timeout=0.5)
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(b"G")
        sock.settimeout(0.2)
        answer = b""
        while not answer:  # a byte every 0.2 s: never silent for 0.5 s
            try:
                answer = sock.recv(65536)
            except socket.timeout:
                sock.sendall(b"E")
    assert answer.startswith(b"HTTP/1.1 408 ") and time.monotonic() - started < 1.6


# --- the caps ---------------------------------------------------------------------------

def test_the_per_address_cap_refuses_the_excess_at_once_and_others_are_served(serve):
    port = serve(per_address=3, head_timeout=30.0, timeout=30.0)
    held = [connect(port) for _ in range(3)]
    try:
        for sock in held:
            sock.sendall(b"GET / HT")
        time.sleep(0.2)  # all three taken
        started = time.monotonic()
        refused = get(port)
        assert time.monotonic() - started < 0.5
        assert refused.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
        assert b"\r\nRetry-After: 1\r\n" in refused and b"Connection: close" in refused
        assert status(get(port, "127.0.0.2")) == 200  # another address is not affected
        held.pop().close()
        assert until(lambda: status(get(port)) == 200, what="a slot for 127.0.0.1")
    finally:
        for sock in held:
            sock.close()


def test_the_cap_on_all_connections_refuses_the_excess_with_503(serve):
    port = serve(max_connections=2, head_timeout=30.0, timeout=30.0)
    held = [connect(port, f"127.0.0.{number}") for number in (2, 3)]
    try:
        for sock in held:
            sock.sendall(b"GET / HT")
        time.sleep(0.2)
        refused = get(port, "127.0.0.4")
        assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"\r\nRetry-After: 1\r\n" in refused
    finally:
        for sock in held:
            sock.close()
    assert until(lambda: status(get(port, "127.0.0.4")) == 200, what="a free slot")


def test_when_every_connection_is_taken_the_oldest_slow_one_makes_room(serve):
    port = serve(max_connections=2, head_timeout=30.0, timeout=30.0)
    oldest, younger = (connect(port, f"127.0.0.{number}") for number in (2, 3))
    try:
        for sock in (oldest, younger):
            sock.sendall(b"GET / HT")
            time.sleep(0.3)
        assert status(get(port, "127.0.0.4")) == 503  # neither has been open for 1 s
        time.sleep(server_module.EVICT_AFTER)
        assert status(get(port, "127.0.0.4")) == 200  # the oldest made room
        assert read_all(oldest).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        younger.settimeout(0.2)
        with pytest.raises(socket.timeout):
            younger.recv(10)  # still held
    finally:
        oldest.close()
        younger.close()


def test_refusals_are_logged_at_once_then_at_most_once_a_minute_with_a_count(
        serve, monkeypatch, caplog):
    monkeypatch.setattr(server_module, "REFUSAL_LOG_SECONDS", 1.0)  # "a minute" for the test
    caplog.set_level(logging.WARNING, logger=server_module.__name__)
    port = serve(per_address=1, head_timeout=30.0, timeout=30.0)
    with connect(port) as held:
        held.sendall(b"GET / HT")
        time.sleep(0.2)
        for _ in range(5):
            assert status(get(port)) == 429

        def lines() -> list[str]:
            return [record.getMessage() for record in caplog.records]

        assert len(lines()) == 1
        assert "1 connection over the limit of 1 from one address (the last from 127.0.0.1)" \
            " got 429" in lines()[0]
        until(lambda: len(lines()) == 2, what="the summary")  # without another refusal
        assert "4 connections over the limit of 1 from one address" in lines()[1]
        time.sleep(1.2)
        assert len(lines()) == 2


def test_address_groups():
    assert address_group("192.0.2.7") == "192.0.2.7"
    assert address_group("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_group("2001:db8:1:2:a:b:c:d") == "2001:db8:1:2::/64"
    assert address_group("2001:db8:1:2::99") == "2001:db8:1:2::/64"
    assert address_group("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert address_group("fe80::1%eth0") == "fe80::/64"
    assert address_group("not-an-address") == "not-an-address"


# --- workers ----------------------------------------------------------------------------

def test_a_complete_request_that_finds_every_worker_busy_gets_503_at_once(serve):
    release = threading.Event()

    def application(method: str, path: str) -> Response:
        if path == "/slow":
            release.wait(10)
        return ok(method, path)

    port = serve(application, workers=1)
    answers: list[bytes] = []
    slow = threading.Thread(target=lambda: answers.append(
        get(port, request=b"GET /slow HTTP/1.0\r\n\r\n")))
    slow.start()
    try:
        time.sleep(0.2)  # /slow holds the one worker
        started = time.monotonic()
        busy = get(port, request=b"HEAD /quick HTTP/1.0\r\n\r\n")
        assert time.monotonic() - started < 0.5
        assert busy.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"\r\nRetry-After: 1\r\n" in busy and busy.endswith(b"\r\n\r\n")  # HEAD: no body
    finally:
        release.set()
        slow.join(10)
    assert answers[0].endswith(b"GET /slow")
    assert get(port).endswith(b"GET /x")


def test_a_client_that_does_not_read_its_answer_holds_no_worker(serve):
    big = b"x" * (8 * 1024 * 1024)
    port = serve(lambda method, path: Response(200, big if path == "/big" else b"small"),
                 workers=1, timeout=3.0)
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        reader.connect(("127.0.0.1", port))
        reader.sendall(b"GET /big HTTP/1.1\r\n\r\n")  # and reads nothing
        time.sleep(0.3)
        started = time.monotonic()
        assert get(port).endswith(b"small")
        assert time.monotonic() - started < 0.5
    finally:
        reader.close()


def test_a_client_that_keeps_its_connection_open_holds_no_worker(serve):
    port = serve(workers=1)
    with connect(port) as lingering:
        lingering.sendall(REQUEST)
        assert lingering.recv(65536).startswith(b"HTTP/1.1 200 ")  # and stays connected
        started = time.monotonic()
        assert status(get(port)) == 200
        assert time.monotonic() - started < 0.5  # not after the drain's second


def test_a_1_mb_head_is_answered_from_its_first_line(serve):
    port = serve()
    head = b"GET /big-head HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 1024 * 1024 + b"\r\n\r\n"
    answer = raw_request(port, head)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"GET /big-head")


def test_the_body_is_never_read_and_the_answer_arrives(serve):
    port = serve()
    answer = raw_request(port, b"POST /form HTTP/1.1\r\nContent-Length: 200000\r\n\r\n"
                         + b"b" * 200000)
    assert answer.endswith(b"POST /form")


# --- idle and stop ----------------------------------------------------------------------

@pytest.fixture
def selects(monkeypatch) -> list[float | None]:
    """The timeout of every select() the server makes (started after this fixture)."""
    calls: list[float | None] = []

    class Recording(selectors.DefaultSelector):
        def select(self, timeout=None):
            calls.append(timeout)
            return super().select(timeout)

    monkeypatch.setattr(server_module.selectors, "DefaultSelector", Recording)
    return calls


def test_idle_the_server_blocks_with_no_timeout_and_never_wakes(serve, selects):
    port = serve(head_timeout=1.0)
    time.sleep(0.3)
    assert selects == [None]  # one select, blocking with no timeout

    with connect(port) as sock:  # one pending head: the timeout is its deadline
        sock.sendall(b"GET / HT")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    pending = [timeout for timeout in selects[1:] if timeout is not None]
    assert pending and 0.8 < pending[0] <= 1.0
    assert all(timeout > 0.01 for timeout in pending[:-1]), pending  # no polling meanwhile
    assert len(selects) < 10, selects

    assert status(get(port)) == 200
    time.sleep(0.3)  # answered, drained and closed
    assert selects[-1] is None
    calls = len(selects)
    time.sleep(1.5)
    assert len(selects) == calls  # no wakeups at all while idle


def test_stop_is_prompt_and_clean_with_clients_in_every_stage():
    release = threading.Event()

    def application(method: str, path: str) -> Response:
        if path == "/slow":
            release.wait(10)
        return ok(method, path)

    server = HttpServer(("127.0.0.1", 0), application, head_timeout=30.0, timeout=30.0)
    server.start()
    port = server.bound[1]
    name = f"slatefish:127.0.0.1:{port}"
    idle = connect(port)                                   # sent nothing
    dripper = connect(port, "127.0.0.2")                   # half a head
    dripper.sendall(b"GET / HT")
    answers: list[bytes] = []
    slow = threading.Thread(target=lambda: answers.append(
        get(port, "127.0.0.3", b"GET /slow HTTP/1.0\r\n\r\n")))  # with a worker
    slow.start()
    try:
        time.sleep(0.3)
        threading.Timer(0.5, release.set).start()  # /slow finishes within the grace
        started = time.monotonic()
        stopping = threading.Thread(target=server.stop, args=(2.0,))
        stopping.start()
        for sock in (idle, dripper):  # no request yet: closed at once, not after the grace
            sock.settimeout(2)
            assert sock.recv(10) == b""
        assert time.monotonic() - started < 0.3
        stopping.join(5)
        assert time.monotonic() - started < 1.0  # /slow answered after 0.5 s: no waiting
        slow.join(5)
        assert answers and answers[0].endswith(b"GET /slow")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert not [thread for thread in threading.enumerate() if thread.name == name]
        server.stop()
    finally:
        release.set()
        idle.close()
        dripper.close()


def test_http_dates_are_english_and_match_the_standard_library():
    from email.utils import formatdate

    from mirror.plugins.slatefish.server import http_date

    for when in (0, 784111777, 1795535013.9, 4102444800):
        assert http_date(when) == formatdate(when, usegmt=True)
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
