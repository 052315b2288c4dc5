# SPDX-License-Identifier: GPL-3.0-or-later
"""Slowloris against the status page: many clients that send their request one byte every 2 s.

A slow client may hold a descriptor and a few bytes until its head deadline, never a worker
thread, so real visitors keep getting 200 while 80 of them drip; the drippers get 408 at
their deadline. From one address, only the per-address cap's worth is held at all; the rest
are refused at once with 429.

The drippers come from 127.0.0.2 … 127.0.0.81 (all of 127.0.0.0/8 is loopback on Linux), so
that the per-address cap does not hide the problem; the visitors come from 127.0.0.1.
"""
from __future__ import annotations

import logging
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from mirror.plugins.slatefish import server as server_module
from mirror.plugins.slatefish.server import HEAD_TIMEOUT, PER_ADDRESS, HttpServer, Response
from test.integration.conftest import free_port, general

DRIPPERS = 80
DRIP_SECONDS = 2.0
# Never complete at one byte every 2 s: a head that would take minutes.
DRIP_HEAD = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: drip\r\nX-Drip: "
             + b"a" * 200 + b"\r\n\r\n")
VISITS = 20
VISIT_SECONDS = 0.4   # 20 visits over 8 s, all while the drippers drip
VISIT_BOUND = 1.0     # each visit answered within this (it takes milliseconds)


@dataclass
class Dripper:
    """One slow client: its socket, when it connected, and what it got back."""

    sock: socket.socket
    source: str
    connected: float
    sent: int = 0
    answer: bytes = b""
    answered: float | None = None   # when the first byte of an answer arrived
    closed: float | None = None     # when the server closed (or reset) the connection
    error: str = ""


@dataclass
class Drip:
    """Drives many drippers from one thread: one byte each every *interval* seconds, and
    whatever the server answers is recorded. Stop with :meth:`close`."""

    port: int
    sources: list[str]
    interval: float = DRIP_SECONDS
    drippers: list[Dripper] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        for source in self.sources:
            sock = socket.socket()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((source, 0))
            sock.settimeout(5)
            sock.connect(("127.0.0.1", self.port))
            sock.setblocking(False)
            dripper = Dripper(sock, source, time.monotonic())
            self.drippers.append(dripper)
            self._send(dripper)
            self._selector.register(sock, selectors.EVENT_READ, dripper)
        self._thread = threading.Thread(target=self._run, daemon=True, name="dripper")
        self._thread.start()

    def _send(self, dripper: Dripper) -> None:
        if dripper.closed is not None or dripper.answered is not None:
            return
        try:
            dripper.sock.send(DRIP_HEAD[dripper.sent:dripper.sent + 1])
            dripper.sent += 1
        except OSError as problem:
            dripper.error = dripper.error or f"send: {problem}"

    def _run(self) -> None:
        next_drip = time.monotonic() + self.interval
        while not self._stop.is_set():
            timeout = max(0.0, next_drip - time.monotonic())
            for key, _mask in self._selector.select(min(timeout, 0.2)):
                dripper: Dripper = key.data
                try:
                    chunk = dripper.sock.recv(65536)
                except OSError as problem:
                    chunk = b""
                    dripper.error = dripper.error or f"recv: {problem}"
                if chunk and dripper.answered is None:
                    dripper.answered = time.monotonic()
                dripper.answer += chunk
                if not chunk:
                    dripper.closed = time.monotonic()
                    self._selector.unregister(dripper.sock)
            if time.monotonic() >= next_drip:
                for dripper in self.drippers:
                    self._send(dripper)
                next_drip += self.interval

    def wait_all_answered(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(d.closed is not None for d in self.drippers):
                return
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._selector.close()
        for dripper in self.drippers:
            dripper.sock.close()


def visit(port: int, path: str = "/") -> tuple[int, float]:
    """(status, seconds) of one GET from 127.0.0.1; status 0 if the connection failed."""
    started = time.monotonic()
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            while chunk := conn.recv(65536):
                answer += chunk
    except OSError:
        pass
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, time.monotonic() - started


def visits_while_dripping(port: int, path: str) -> list[tuple[int, float]]:
    results = []
    for _ in range(VISITS):
        results.append(visit(port, path))
        time.sleep(VISIT_SECONDS)
    return results


def report(what: str, results: list[tuple[int, float]]) -> str:
    times = sorted(seconds * 1000 for _status, seconds in results)
    return (f"{what}: statuses {[status for status, _s in results]}; latency ms median "
            f"{statistics.median(times):.1f}, max {times[-1]:.1f}")


def sources(count: int) -> list[str]:
    return [f"127.0.0.{2 + number}" for number in range(count)]


@pytest.fixture
def page_server() -> Iterator[HttpServer]:
    """A real HttpServer with its defaults (head deadline, caps, workers)."""
    server = HttpServer(("127.0.0.1", 0), lambda method, path: Response(200, b"ok"))
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_visitors_get_200_while_80_clients_drip_at_a_real_daemon(mirrord):
    """The real default deadline (10 s) in a real daemon: every visit gets 200 quickly, and
    every dripper gets 408 at its deadline."""
    port = free_port()
    daemon = mirrord(general(), plugins=f"[slatefish]\nlisten = 127.0.0.1:{port}\n")
    assert visit(port, "/api/status")[0] == 200
    drip = Drip(port, sources(DRIPPERS))
    try:
        time.sleep(0.5)  # every dripper has sent a byte or two and is held by the server
        assert not [d for d in drip.drippers if d.answer or d.error]
        results = visits_while_dripping(port, "/api/status")
        print(report("visitors while 80 clients drip", results))
        assert [status for status, _s in results] == [200] * VISITS, report("visits", results)
        assert max(seconds for _status, seconds in results) < VISIT_BOUND
        drip.wait_all_answered(HEAD_TIMEOUT + 5)
    finally:
        drip.close()
    late = [d for d in drip.drippers if not d.answer.startswith(b"HTTP/1.1 408 ")]
    assert not late, [(d.source, d.answer[:40], d.error) for d in late]
    waited = [d.answered - d.connected for d in drip.drippers]
    print(f"drippers got 408 after {min(waited):.2f}–{max(waited):.2f} s")
    assert min(waited) >= HEAD_TIMEOUT - 0.1 and max(waited) <= HEAD_TIMEOUT + 2
    assert "did not send a complete request within 10 s (408)" in daemon.log()


def test_visitors_get_200_while_80_clients_drip_and_drippers_get_408(page_server):
    """The same with a 3 s deadline, against the server alone."""
    page_server.stop()
    server = HttpServer(("127.0.0.1", 0), lambda method, path: Response(200, b"ok"),
                        head_timeout=3.0)
    server.start()
    try:
        port = server.bound[1]
        drip = Drip(port, sources(DRIPPERS), interval=0.5)
        try:
            results = []
            for _ in range(10):
                results.append(visit(port))
                time.sleep(0.2)
            print(report("visitors while 80 clients drip", results))
            assert [status for status, _s in results] == [200] * 10, report("visits", results)
            assert max(seconds for _status, seconds in results) < VISIT_BOUND
            drip.wait_all_answered(3.0 + 5)
        finally:
            drip.close()
        assert all(d.answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
                   for d in drip.drippers)
        waited = [d.answered - d.connected for d in drip.drippers]
        assert min(waited) >= 2.9 and max(waited) <= 3.0 + 2
        assert visit(port)[0] == 200
    finally:
        server.stop()


def test_more_drippers_than_connection_slots_do_not_lock_visitors_out():
    """80 drippers from 80 addresses, room for 40 connections: after a second, each visitor
    takes the place of the oldest dripper."""
    server = HttpServer(("127.0.0.1", 0), lambda method, path: Response(200, b"ok"),
                        max_connections=40)
    server.start()
    try:
        port = server.bound[1]
        drip = Drip(port, sources(DRIPPERS))
        try:
            time.sleep(server_module.EVICT_AFTER + 0.2)
            results = [visit(port) for _ in range(10)]
            print(report("visitors while 80 clients drip into 40 slots", results))
            assert [status for status, _s in results] == [200] * 10, report("visits", results)
            assert max(seconds for _status, seconds in results) < VISIT_BOUND
        finally:
            drip.close()
        answers = [d.answer[:13] for d in drip.drippers if d.answer]
        # 40 refused at once, then at least one evicted (a visit frees its slot when it ends)
        assert DRIPPERS - 40 < answers.count(b"HTTP/1.1 503 ") <= DRIPPERS - 40 + 10
    finally:
        server.stop()


def test_80_drippers_from_one_address_are_capped_at_once(page_server, caplog):
    caplog.set_level(logging.WARNING, logger=server_module.__name__)
    port = page_server.bound[1]
    started = time.monotonic()
    drip = Drip(port, ["127.0.0.2"] * DRIPPERS)
    try:
        refused = lambda: [d for d in drip.drippers if d.closed is not None]  # noqa: E731
        deadline = time.monotonic() + 5
        while len(refused()) < DRIPPERS - PER_ADDRESS and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(refused()) == DRIPPERS - PER_ADDRESS
        assert all(d.answer.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
                   and b"\r\nRetry-After: " in d.answer for d in refused())
        assert max(d.answered - d.connected for d in refused()) < 1.0  # at once
        held = [d for d in drip.drippers if d.closed is None]
        assert len(held) == PER_ADDRESS and not any(d.answer for d in held)
        results = [visit(port) for _ in range(5)]
        assert [status for status, _s in results] == [200] * 5
        assert time.monotonic() - started < HEAD_TIMEOUT  # all of this before any deadline
    finally:
        drip.close()
    lines = [record.getMessage() for record in caplog.records
             if "from one address" in record.getMessage()]
    assert len(lines) == 1, lines  # at most once a minute: the first, the rest later
    assert "1 connection over the limit of 16 from one address (the last from 127.0.0.2)" \
        in lines[0]
