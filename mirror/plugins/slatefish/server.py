# SPDX-License-Identifier: GPL-3.0-or-later
"""A small HTTP/1.1 server that costs nothing while idle and holds against slow clients.

One thread, the I/O thread, does every socket operation, without blocking, from a selector
over the listening socket, a wake socket and the open connections. It accepts, reads each
request head into a small buffer of its connection, writes each answer and drains the
connection before closing it (``Connection: close``). Only a complete head goes to a worker
thread, started for that one request, which calls the application and hands the encoded
answer back to the I/O thread. So a client that sends or reads slowly holds a descriptor and a
buffer, never a thread. Request bodies are never read.

The limits, each with what the client sees:

* a client must send its whole request head within ``head_timeout`` (10 s) of connecting:
  otherwise ``408 Request Timeout`` (a client that sent nothing at all is closed without an
  answer, as a browser's speculative connection expects); one that stays silent for
  ``timeout`` seconds while sending its head is closed without an answer;
* at most ``per_address`` (16) connections at once from one address (IPv6: one /64): more are
  answered ``429 Too Many Requests`` at once and closed;
* at most ``max_connections`` (512) connections at once in all: when all are taken, the
  oldest that has been open for ``EVICT_AFTER`` (1 s) and is not with a worker is closed to
  make room (``503`` if it was still sending its head), so that slow clients from many
  addresses cannot lock visitors out; if none is that old, the newcomer gets ``503`` at once;
* at most ``workers`` (64) requests are with the application at once: a complete request that
  finds them all busy gets ``503`` at once;
* a client has ``timeout`` seconds to take its answer, and what it sends afterwards is read
  for at most ``DRAIN_SECONDS``.

Refusals and 408s are logged at most once a minute, with counts. Idle, the I/O thread blocks
in the selector with no timeout; while connections are open, its timeout is the earliest of
their deadlines. It never polls.
"""
from __future__ import annotations

import contextlib
import heapq
import ipaddress
import logging
import selectors
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from mirror.plugins.slatefish.listen import Address, address_text

log = logging.getLogger(__name__)

HEAD_TIMEOUT = 10.0        # seconds from accept to the end of the request head; then 408
CONNECTION_TIMEOUT = 10.0  # seconds a client may stay silent mid-head, or take to read the answer
MAX_HEAD_BYTES = 16384     # a longer head is answered from its first line; the rest is drained
MAX_CONNECTIONS = 512      # open connections in all (reading, answered, writing, draining)
PER_ADDRESS = 16           # open connections from one IPv4 address or one IPv6 /64
WORKERS = 64               # requests with the application at once
EVICT_AFTER = 1.0          # when all connections are taken, one open this long may make room
DRAIN_SECONDS = 1.0        # after the answer, what the client still sends is read this long
DRAIN_BYTES = 4 * 1024 * 1024  # and at most this much (a client sending megabytes of headers)
BACKLOG = 128
READ_CHUNK = 65536
RETRY_AFTER_SECONDS = 1    # in every refusal: slots free up as fast requests finish
REFUSAL_LOG_SECONDS = 60.0
ACCEPT_RETRY_SECONDS = 0.5  # after e.g. EMFILE, which a level-triggered selector would repeat

# The stages of a connection.
_HEAD = "head"      # reading the request head
_WORK = "work"      # with a worker (the I/O thread does not watch it)
_WRITE = "write"    # writing the answer
_DRAIN = "drain"    # answer sent and our side shut: reading what the client still sends
_CLOSED = "closed"

_LISTENER = object()
_WAKE = object()


class ListenError(OSError):
    """The server cannot listen on its address; the message names it and says why."""


@dataclass(frozen=True)
class Response:
    """What the application answers: status, body and headers beyond the standard ones."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


# The application: (method, path) → Response. It is called on worker threads.
Application = Callable[[str, str], Response]


def text_response(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A plain-text response with *text* and a final newline."""
    return Response(status, (text + "\n").encode(), headers=headers)


def address_group(host: str) -> str:
    """What the per-address cap counts by, for a peer's *host* as ``accept`` gives it.

    Returns:
        An IPv4 address as is (also when it comes IPv4-mapped, ``::ffff:a.b.c.d``, on a
        dual-stack socket); for IPv6, its /64 network, since one host or one site's clients
        are given a whole /64; anything else (not an IP address) unchanged.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class _Connection:
    """One client connection and the I/O thread's bookkeeping for it."""

    __slots__ = ("accepted", "drained", "group", "head", "last_read", "method", "out", "peer",
                 "since", "sock", "stage", "timer", "watched")

    def __init__(self, sock: socket.socket, peer: str, group: str, now: float) -> None:
        self.sock = sock
        self.peer = peer
        self.group = group
        self.stage = _HEAD
        self.head = bytearray()
        self.accepted = now
        self.last_read = now
        self.since = now          # when the current stage began
        self.out = memoryview(b"")
        self.drained = 0
        self.method = "GET"
        self.timer = 0            # the sequence number of its live deadline entry; 0: none
        self.watched = 0          # the selector events it is registered for; 0: none


class HttpServer:
    """Serves *application* on *address* from :meth:`start` until :meth:`stop`.

    Args:
        address: (host, port) to listen on; port 0 lets the system choose (see :attr:`bound`).
        application: (method, path) → Response, called on a worker thread per request.
        timeout: seconds a client may stay silent while sending its head (then it is closed
            without an answer), and may take to read its answer.
        max_connections: open connections at once, in every stage. A newcomer beyond them
            takes the place of the oldest connection that has been open EVICT_AFTER seconds
            and is not with a worker, or gets 503 at once if there is none.
        head_timeout: seconds from connecting to the end of the request head; then 408.
        per_address: open connections at once from one address (IPv6: one /64); more get
            429 at once.
        workers: requests with the application at once; more get 503 at once.
    """

    def __init__(self, address: Address, application: Application,
                 timeout: float = CONNECTION_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS, *,
                 head_timeout: float = HEAD_TIMEOUT,
                 per_address: int = PER_ADDRESS,
                 workers: int = WORKERS) -> None:
        self.address = address
        self._application = application
        self._timeout = timeout
        self._max_connections = max_connections
        self._head_timeout = head_timeout
        self._per_address = per_address
        self._workers = workers
        self._listener: socket.socket | None = None
        self._bound: Address | None = None
        self._wake_read: socket.socket | None = None
        self._wake_write: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stop_deadline = 0.0
        # Shared with the workers, under the lock:
        self._lock = threading.Lock()
        self._working: set[threading.Thread] = set()
        self._answers: deque[tuple[_Connection, bytes]] = deque()
        self._closed = False
        # The I/O thread's own:
        self._selector: selectors.BaseSelector | None = None
        self._connections: OrderedDict[_Connection, None] = OrderedDict()  # oldest first
        self._per_group: dict[str, int] = {}
        self._deadlines: list[tuple[float, int, _Connection]] = []
        self._sequence = 0
        self._accept_resumes: float | None = None
        self._counts = {"address": 0, "total": 0, "evicted": 0, "workers": 0, "timeout": 0}
        self._last_refused = ""
        self._summary_logged = -REFUSAL_LOG_SECONDS
        self._summary_due: float | None = None
        self._accept_error_logged = -REFUSAL_LOG_SECONDS

    @property
    def bound(self) -> Address:
        """The address actually listened on (the port the system chose, if it was 0).

        Raises:
            AssertionError: the server was never started.
        """
        assert self._bound is not None, "start() first"
        return self._bound

    def start(self) -> None:
        """Bind, listen and start the I/O thread.

        Raises:
            ListenError: the address does not resolve, is in use, or is not ours.
        """
        host, port = self.address
        where = address_text(self.address)
        try:
            family, kind, proto, _name, sockaddr = socket.getaddrinfo(
                # bytes, not str: a str host loads the idna codec (stringprep, unicodedata)
                host.encode(), port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                socket.AI_PASSIVE)[0]
        except socket.gaierror as problem:
            raise ListenError(f"cannot listen on {where}: {problem.strerror}") from None
        listener = socket.socket(family, kind, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(sockaddr)
            listener.listen(BACKLOG)
            listener.setblocking(False)
        except OSError as problem:
            listener.close()
            error = ListenError(f"cannot listen on {where}: {problem.strerror or problem}")
            error.errno = problem.errno
            raise error from None
        self._listener = listener
        bound_host, bound_port = listener.getsockname()[:2]
        self._bound = (bound_host, bound_port)
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._stopping.clear()
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"slatefish:{address_text(self.bound)}")
        self._thread.start()

    def stop(self, seconds: float = 3.0) -> None:
        """Stop accepting (the port is closed at once), give requests in flight up to
        *seconds*, then cut the rest off and close every socket. Safe to call twice.

        Connections still sending their request head are closed at once (so slow clients do
        not hold up a stop); requests with a worker, and answers being sent or drained, get
        the time that is left.
        """
        if self._thread is None:
            return
        self._stop_deadline = time.monotonic() + seconds
        self._stopping.set()
        self._wake()
        self._thread.join(seconds + 2.0)  # it leaves at the deadline at the latest
        if self._thread.is_alive():
            log.warning("status page: the server thread did not stop in %g s", seconds)
        self._thread = None
        for sock in (self._wake_read, self._wake_write):
            if sock is not None:
                sock.close()
        self._wake_read = self._wake_write = None
        with self._lock:
            working = list(self._working)
        for thread in working:  # an application call that outlasts this is left to finish
            thread.join(max(0.0, self._stop_deadline - time.monotonic()))

    # --- the I/O thread ------------------------------------------------------------------

    def _run(self) -> None:
        assert self._listener is not None and self._wake_read is not None
        stop_began = False
        with selectors.DefaultSelector() as selector:
            self._selector = selector
            selector.register(self._listener, selectors.EVENT_READ, _LISTENER)
            selector.register(self._wake_read, selectors.EVENT_READ, _WAKE)
            try:
                while True:
                    if self._stopping.is_set():
                        if not stop_began:
                            self._begin_stop()
                            stop_began = True
                        if not self._connections or time.monotonic() >= self._stop_deadline:
                            break
                    for key, events in selector.select(self._select_timeout()):
                        self._handle(key.data, events)
                    now = time.monotonic()
                    self._take_answers(now)
                    self._expire(now)
            except Exception:
                log.exception("status page: the server failed; it is off until the next reload "
                              "or restart")
            finally:
                self._shut_down()

    def _handle(self, target: object, events: int) -> None:
        now = time.monotonic()
        if target is _LISTENER:
            if not self._stopping.is_set():
                self._accept(now)
        elif target is _WAKE:
            assert self._wake_read is not None
            with contextlib.suppress(OSError):
                while self._wake_read.recv(4096):
                    pass
        else:
            assert isinstance(target, _Connection)
            if target.stage == _HEAD:
                self._read_head(target, now)
            elif target.stage == _WRITE and events & selectors.EVENT_WRITE:
                self._write(target, now)
            elif target.stage == _DRAIN:
                self._drain(target)

    def _select_timeout(self) -> float | None:
        """Seconds until the earliest deadline, or None (block) when nothing is pending."""
        while self._deadlines and self._deadlines[0][1] != self._deadlines[0][2].timer:
            heapq.heappop(self._deadlines)  # stale: the connection moved on or closed
        due = [when for when in (self._deadlines[0][0] if self._deadlines else None,
                                 self._accept_resumes, self._summary_due,
                                 self._stop_deadline if self._stopping.is_set() else None)
               if when is not None]
        if not due:
            return None
        return max(0.0, min(due) - time.monotonic())

    def _begin_stop(self) -> None:
        assert self._selector is not None and self._listener is not None
        if self._accept_resumes is None:
            self._selector.unregister(self._listener)
        self._listener.close()  # new connections are refused from now on
        self._accept_resumes = None
        for conn in list(self._connections):
            if conn.stage == _HEAD:  # no request yet: nothing to finish
                self._close(conn)

    def _shut_down(self) -> None:
        with self._lock:
            self._closed = True  # from now on, workers close their own connections
            self._answers.clear()
        for conn in list(self._connections):
            self._close(conn)
        if self._listener is not None:
            self._listener.close()
        self._log_summary(time.monotonic())
        self._deadlines.clear()
        self._per_group.clear()
        self._selector = None

    def _accept(self, now: float) -> None:
        assert self._listener is not None and self._selector is not None
        for _ in range(BACKLOG):  # a bounded batch: then the others get their turn
            try:
                sock, peer = self._listener.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as problem:  # out of descriptors or memory: pause, then retry
                if now - self._accept_error_logged >= REFUSAL_LOG_SECONDS:
                    log.warning("status page: cannot accept connections: %s", problem)
                    self._accept_error_logged = now
                self._selector.unregister(self._listener)
                self._accept_resumes = now + ACCEPT_RETRY_SECONDS
                return
            sock.setblocking(False)
            group = address_group(peer[0])
            if self._per_group.get(group, 0) >= self._per_address:
                self._note("address", now, peer[0])
                _refuse(sock, HTTPStatus.TOO_MANY_REQUESTS,
                        "too many connections from your address; try again")
                continue
            if len(self._connections) >= self._max_connections and not self._evict(now):
                self._note("total", now, peer[0])
                _refuse(sock, HTTPStatus.SERVICE_UNAVAILABLE,
                        "too many connections; try again")
                continue
            conn = _Connection(sock, peer[0], group, now)
            self._connections[conn] = None
            self._per_group[group] = self._per_group.get(group, 0) + 1
            self._watch(conn, selectors.EVENT_READ)
            self._schedule(conn)

    def _evict(self, now: float) -> bool:
        """Make room for a newcomer: close the oldest connection that has been open at least
        EVICT_AFTER seconds and is not with a worker (one still sending its head gets 503).

        Returns:
            Whether one was closed.
        """
        for conn in self._connections:  # oldest first; skips at most the workers' ones
            if conn.accepted > now - EVICT_AFTER:
                return False
            if conn.stage != _WORK:
                break
        else:
            return False
        self._note("evicted", now, conn.peer)
        if conn.stage == _HEAD:
            self._unwatch(conn)
            _refuse(conn.sock, HTTPStatus.SERVICE_UNAVAILABLE, "too many connections; try again")
        self._close(conn)
        return True

    def _read_head(self, conn: _Connection, now: float) -> None:
        try:
            chunk = conn.sock.recv(min(READ_CHUNK, MAX_HEAD_BYTES + 1 - len(conn.head)))
        except BlockingIOError:
            return
        except OSError as problem:
            log.debug("status page: connection from %s: %s", conn.peer, problem)
            self._close(conn)
            return
        if not chunk:  # the client shut its side: answer what it sent, if anything
            if conn.head:
                self._dispatch(conn, now)
            else:
                self._close(conn)
            return
        searched = max(0, len(conn.head) - 3)
        conn.head += chunk
        conn.last_read = now
        if (conn.head.find(b"\r\n\r\n", searched) >= 0 or conn.head.find(b"\n\n", searched) >= 0
                or len(conn.head) > MAX_HEAD_BYTES):  # answered from its first line
            self._dispatch(conn, now)

    def _dispatch(self, conn: _Connection, now: float) -> None:
        """Hand a complete head to a new worker thread, or answer 503 if all are busy."""
        head = bytes(conn.head)
        conn.head = bytearray()
        parsed = _parse_request_line(head)
        conn.method = parsed[0] if parsed is not None else "GET"
        self._unwatch(conn)
        conn.stage = _WORK
        self._schedule(conn)
        with self._lock:  # started under the lock, so stop() never sees an unstarted one
            busy = len(self._working) >= self._workers
            if not busy:
                thread = threading.Thread(target=self._work, args=(conn, head), daemon=True,
                                          name="slatefish:request")
                try:
                    thread.start()
                except RuntimeError:  # the system will not give us another thread
                    busy = True
                else:
                    self._working.add(thread)
        if busy:
            self._note("workers", now, conn.peer)
            self._respond(conn, _encode(conn.method, _refusal(
                HTTPStatus.SERVICE_UNAVAILABLE, "too many requests in flight; try again")), now)

    def _take_answers(self, now: float) -> None:
        while True:
            with self._lock:
                if not self._answers:
                    return
                conn, data = self._answers.popleft()
            if conn.stage == _WORK:
                self._respond(conn, data, now)

    def _respond(self, conn: _Connection, data: bytes, now: float) -> None:
        conn.stage = _WRITE
        conn.since = now
        conn.head = bytearray()
        conn.out = memoryview(data)
        self._schedule(conn)
        self._write(conn, now)

    def _write(self, conn: _Connection, now: float) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            sent = 0
        except OSError as problem:
            log.debug("status page: connection from %s: %s", conn.peer, problem)
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if conn.out:
            self._watch(conn, selectors.EVENT_WRITE)
            return
        # Close our side, then read what the client still sends (such as a body we ignored),
        # so that closing does not reset the connection before the client has read the answer.
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.stage = _DRAIN
        conn.since = now
        self._watch(conn, selectors.EVENT_READ)
        self._schedule(conn)

    def _drain(self, conn: _Connection) -> None:
        try:
            chunk = conn.sock.recv(READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        conn.drained += len(chunk)
        if not chunk or conn.drained > DRAIN_BYTES:
            self._close(conn)

    def _expire(self, now: float) -> None:
        """Act on every deadline that has passed."""
        if self._accept_resumes is not None and now >= self._accept_resumes:
            assert self._selector is not None and self._listener is not None
            self._accept_resumes = None
            self._selector.register(self._listener, selectors.EVENT_READ, _LISTENER)
        if self._summary_due is not None and now >= self._summary_due:
            self._log_summary(now)
        while self._deadlines:
            when, sequence, conn = self._deadlines[0]
            if sequence != conn.timer:
                heapq.heappop(self._deadlines)
                continue
            if when > now:
                return
            heapq.heappop(self._deadlines)
            conn.timer = 0
            actual = self._deadline(conn)
            if actual is not None and actual > now:  # it read more since: a later deadline
                self._schedule(conn)
            elif actual is not None:
                self._timed_out(conn, now)

    def _timed_out(self, conn: _Connection, now: float) -> None:
        if conn.stage == _HEAD and now >= conn.accepted + self._head_timeout and conn.head:
            self._note("timeout", now, conn.peer)
            self._respond(conn, _encode("GET", text_response(
                HTTPStatus.REQUEST_TIMEOUT,
                f"the request did not arrive within {self._head_timeout:g} s")), now)
            return
        log.debug("status page: connection from %s: closed in stage %s after %.1f s",
                  conn.peer, conn.stage, now - conn.accepted)
        self._close(conn)

    def _deadline(self, conn: _Connection) -> float | None:
        if conn.stage == _HEAD:
            return min(conn.accepted + self._head_timeout, conn.last_read + self._timeout)
        if conn.stage == _WRITE:
            return conn.since + self._timeout
        if conn.stage == _DRAIN:
            return conn.since + DRAIN_SECONDS
        return None  # with a worker, or closed

    def _schedule(self, conn: _Connection) -> None:
        """Put *conn*'s current deadline on the heap, replacing any earlier entry."""
        when = self._deadline(conn)
        if when is None:
            conn.timer = 0
            return
        self._sequence += 1
        conn.timer = self._sequence
        heapq.heappush(self._deadlines, (when, self._sequence, conn))

    def _watch(self, conn: _Connection, events: int) -> None:
        assert self._selector is not None
        if conn.watched == events:
            return
        if conn.watched:
            self._selector.modify(conn.sock, events, conn)
        else:
            self._selector.register(conn.sock, events, conn)
        conn.watched = events

    def _unwatch(self, conn: _Connection) -> None:
        if conn.watched and self._selector is not None:
            self._selector.unregister(conn.sock)
        conn.watched = 0

    def _close(self, conn: _Connection) -> None:
        if conn.stage == _CLOSED:
            return
        self._unwatch(conn)
        conn.sock.close()
        conn.stage = _CLOSED
        conn.timer = 0
        conn.head = bytearray()
        conn.out = memoryview(b"")
        self._connections.pop(conn, None)
        left = self._per_group.get(conn.group, 0) - 1
        if left > 0:
            self._per_group[conn.group] = left
        else:
            self._per_group.pop(conn.group, None)

    def _note(self, kind: str, now: float, peer: str) -> None:
        """Count a refusal or a 408 for the log: the first at once, then at most one line a
        minute (a one-shot deadline, so an idle server still sleeps)."""
        self._counts[kind] += 1
        if kind == "address":
            self._last_refused = peer
        if now - self._summary_logged >= REFUSAL_LOG_SECONDS:
            self._log_summary(now)
        elif self._summary_due is None:
            self._summary_due = self._summary_logged + REFUSAL_LOG_SECONDS

    def _log_summary(self, now: float) -> None:
        counts = self._counts
        parts = []
        if counts["address"]:
            parts.append(f"{_plural(counts['address'], 'connection')} over the limit of "
                         f"{self._per_address} from one address (the last from "
                         f"{self._last_refused}) got 429")
        if counts["total"]:
            parts.append(f"{_plural(counts['total'], 'connection')} over the limit of "
                         f"{self._max_connections} open connections got 503")
        if counts["evicted"]:
            were = "was" if counts["evicted"] == 1 else "were"
            parts.append(f"{_plural(counts['evicted'], 'connection')} open for over "
                         f"{EVICT_AFTER:g} s {were} closed to make room for new ones (503 if "
                         "still sending the request)")
        if counts["workers"]:
            parts.append(f"{_plural(counts['workers'], 'request')} got 503 while all "
                         f"{self._workers} workers were busy")
        if counts["timeout"]:
            parts.append(f"{_plural(counts['timeout'], 'client')} did not send a complete "
                         f"request within {self._head_timeout:g} s (408)")
        self._summary_due = None
        if not parts:
            return
        log.warning("status page: %s (logged at most once a minute)", "; ".join(parts))
        self._summary_logged = now
        self._counts = dict.fromkeys(counts, 0)

    # --- the workers ---------------------------------------------------------------------

    def _work(self, conn: _Connection, head: bytes) -> None:
        """On a worker thread: answer *head* and hand the bytes back to the I/O thread."""
        data = b""
        try:
            method, path, response = self._answer(head)
            data = _encode(method, response)
            log.debug("status page: %s %s %s %d", conn.peer, method, path, response.status)
        except Exception:
            log.exception("status page: error answering %s", conn.peer)
            data = _encode(conn.method, text_response(HTTPStatus.INTERNAL_SERVER_ERROR,
                                                      "internal error; see the mirrord log"))
        finally:
            with self._lock:
                self._working.discard(threading.current_thread())
                closed = self._closed
                if not closed:
                    self._answers.append((conn, data))
            if closed:
                conn.sock.close()
            else:
                self._wake()

    def _wake(self) -> None:
        sock = self._wake_write
        if sock is not None:
            with contextlib.suppress(OSError):  # full: the I/O thread is waking up anyway
                sock.send(b"\0")

    def _answer(self, head: bytes) -> tuple[str, str, Response]:
        parsed = _parse_request_line(head)
        if parsed is None:
            return "?", "?", text_response(HTTPStatus.BAD_REQUEST, "bad request")
        method, path = parsed
        try:
            return method, path, self._application(method, path)
        except Exception:
            log.exception("status page: error answering %s %s", method, path)
            return method, path, text_response(HTTPStatus.INTERNAL_SERVER_ERROR,
                                               "internal error; see the mirrord log")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _parse_request_line(head: bytes) -> tuple[str, str] | None:
    """(method, path) from ``METHOD TARGET HTTP/1.x``, or None if it is not that."""
    line = head.split(b"\n", 1)[0].decode("latin-1").strip()
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        return None
    return parts[0], urlsplit(parts[1]).path or "/"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(when: float) -> str:
    """*when* (epoch seconds) as an HTTP date, ``Sun, 06 Nov 1994 08:49:37 GMT`` (RFC 9110),
    in English whatever the locale (email.utils would do it, at 1 MB of imports)."""
    moment = time.gmtime(when)
    return (f"{_DAYS[moment.tm_wday]}, {moment.tm_mday:02d} {_MONTHS[moment.tm_mon - 1]} "
            f"{moment.tm_year} {moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} GMT")


def _encode(method: str, response: Response) -> bytes:
    """The whole answer on the wire: status line, headers and, unless *method* is HEAD, body.

    Raises:
        ValueError: the status is not an HTTP status code.
    """
    phrase = HTTPStatus(response.status).phrase
    headers = [("Date", http_date(time.time())), ("Server", "mirrord SlateFish"),
               ("Content-Type", response.content_type),
               ("Content-Length", str(len(response.body))), ("Connection", "close"),
               *response.headers]
    head = f"HTTP/1.1 {response.status} {phrase}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return head.encode("latin-1") + (b"" if method == "HEAD" else response.body)


def _refusal(status: int, text: str) -> Response:
    return text_response(status, text, (("Retry-After", str(RETRY_AFTER_SECONDS)),))


def _refuse(sock: socket.socket, status: int, text: str) -> None:
    """Answer *status* without waiting for anything (on the I/O thread) and close: what the
    client has sent so far is read, so that closing does not reset the connection."""
    with contextlib.suppress(OSError):
        with contextlib.suppress(BlockingIOError):
            for _ in range(16):  # what has arrived, not what a client may keep sending
                if not sock.recv(READ_CHUNK):
                    break
        sock.send(_encode("GET", _refusal(status, text)))
        sock.shutdown(socket.SHUT_WR)
    sock.close()
