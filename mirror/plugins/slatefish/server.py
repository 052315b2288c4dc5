# SPDX-License-Identifier: GPL-3.0-or-later
"""A small HTTP/1.1 server that costs nothing while idle.

One thread blocks in a selector on the listening socket and a wake socket
(written by :meth:`HttpServer.stop`); it never polls. Each connection gets a
short-lived thread with a socket timeout, reads one request head, is answered
by the application callable and closed (``Connection: close``), so a slow
client stalls nobody else. Request bodies are never read.
"""
from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import urlsplit

from mirror.plugins.slatefish.listen import Address, address_text

log = logging.getLogger(__name__)

CONNECTION_TIMEOUT = 10.0  # seconds a client may take to send its request or read the answer
MAX_HEAD_BYTES = 16384
MAX_CONNECTIONS = 64
DRAIN_SECONDS = 1.0
BACKLOG = 64
REFUSAL_LOG_SECONDS = 60.0
ACCEPT_RETRY_SECONDS = 0.5  # after e.g. EMFILE, which a level-triggered selector would repeat


class ListenError(OSError):
    """The server cannot listen on its address; the message names it and says why."""


@dataclass(frozen=True)
class Response:
    """What the application answers: status, body and headers beyond the standard ones."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


# The application: (method, path) → Response. It is called on connection threads.
Application = Callable[[str, str], Response]


def text_response(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A plain-text response with *text* and a final newline."""
    return Response(status, (text + "\n").encode(), headers=headers)


class HttpServer:
    """Serves *application* on *address* from :meth:`start` until :meth:`stop`."""

    def __init__(self, address: Address, application: Application,
                 timeout: float = CONNECTION_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.address = address
        self._application = application
        self._timeout = timeout
        self._max_connections = max_connections
        self._listener: socket.socket | None = None
        self._wake_read: socket.socket | None = None
        self._wake_write: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._refused = 0
        self._refusal_logged = -REFUSAL_LOG_SECONDS

    @property
    def bound(self) -> Address:
        """The address actually listened on (the port the system chose, if it was 0)."""
        assert self._listener is not None, "start() first"
        host, port = self._listener.getsockname()[:2]
        return host, port

    def start(self) -> None:
        """Bind, listen and start the accept thread.

        Raises:
            ListenError: the address does not resolve, is in use, or is not ours.
        """
        host, port = self.address
        where = address_text(self.address)
        try:
            family, kind, proto, _name, sockaddr = socket.getaddrinfo(
                host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0]
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
        self._wake_read, self._wake_write = socket.socketpair()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"slatefish:{address_text(self.bound)}")
        self._thread.start()

    def stop(self, seconds: float = 3.0) -> None:
        """Stop accepting, give requests in flight up to *seconds*, then cut the rest off and
        close every socket. Safe to call twice."""
        if self._thread is None:
            return
        deadline = time.monotonic() + seconds
        self._stopping.set()
        assert self._wake_write is not None
        with contextlib.suppress(OSError):
            self._wake_write.send(b"\0")
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._thread = None
        for sock in (self._listener, self._wake_read, self._wake_write):
            if sock is not None:
                sock.close()
        self._listener = self._wake_read = self._wake_write = None
        with self._lock:
            pending = list(self._connections)
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            stragglers = list(self._connections.items())
        for thread, conn in stragglers:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on a slow client
            thread.join(0.5)

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake_read is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _mask in selector.select():  # no timeout: idle means asleep
                    if key.fileobj is self._listener and not self._stopping.is_set():
                        self._accept_waiting()

    def _accept_waiting(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, peer = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as problem:
                log.warning("status page: cannot accept a connection: %s", problem)
                self._stopping.wait(ACCEPT_RETRY_SECONDS)
                return
            conn.setblocking(True)
            conn.settimeout(self._timeout)
            with self._lock:  # started under the lock, so stop() never sees an unstarted one
                busy = len(self._connections) >= self._max_connections
                if not busy:
                    thread = threading.Thread(target=self._serve_connection, args=(conn, peer),
                                              daemon=True, name="slatefish:request")
                    self._connections[thread] = conn
                    thread.start()
            if busy:
                self._refused += 1
                now = time.monotonic()
                if now - self._refusal_logged >= REFUSAL_LOG_SECONDS:  # not a line per client
                    log.warning("status page: %d requests in flight; refused %d connections "
                                "(the last from %s)", self._max_connections, self._refused,
                                peer[0])
                    self._refusal_logged, self._refused = now, 0
                _refuse(conn)

    def _serve_connection(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        try:
            head = _read_head(conn)
            if head is None:
                return
            method, path, response = self._answer(head)
            conn.sendall(_encode(method, response))
            log.debug("status page: %s %s %s %d", peer[0], method, path, response.status)
            _finish(conn)
        except OSError as problem:  # including timeouts: the client went away or stalled
            log.debug("status page: connection from %s: %s", peer[0], problem)
        except Exception:
            log.exception("status page: error serving %s", peer[0])
        finally:
            conn.close()
            with self._lock:
                self._connections.pop(threading.current_thread(), None)

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


def _read_head(conn: socket.socket) -> bytes | None:
    """The request line and headers, or None if the client closed first.

    Raises:
        OSError: the client stalled past the socket timeout or reset the connection.
    """
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        if len(data) > MAX_HEAD_BYTES:
            return data  # answered from its first line; the rest is never read
        chunk = conn.recv(4096)
        if not chunk:
            return data or None
        data += chunk
    return data


def _parse_request_line(head: bytes) -> tuple[str, str] | None:
    """(method, path) from ``METHOD TARGET HTTP/1.x``, or None if it is not that."""
    line = head.split(b"\n", 1)[0].decode("latin-1").strip()
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        return None
    return parts[0], urlsplit(parts[1]).path or "/"


def _encode(method: str, response: Response) -> bytes:
    phrase = HTTPStatus(response.status).phrase
    headers = [("Date", formatdate(usegmt=True)), ("Server", "mirrord SlateFish"),
               ("Content-Type", response.content_type),
               ("Content-Length", str(len(response.body))), ("Connection", "close"),
               *response.headers]
    head = f"HTTP/1.1 {response.status} {phrase}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return head.encode("latin-1") + (b"" if method == "HEAD" else response.body)


def _refuse(conn: socket.socket) -> None:
    """Answer 503 without waiting for anything (this runs on the accept thread): what the
    client has sent so far is read, so that closing does not reset the connection."""
    with contextlib.suppress(OSError):
        conn.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while conn.recv(65536):
                pass
        conn.send(_encode("GET", text_response(HTTPStatus.SERVICE_UNAVAILABLE,
                                               "too many requests in flight; try again")))
        conn.shutdown(socket.SHUT_WR)
    conn.close()


def _finish(conn: socket.socket) -> None:
    """Close our side, then read what the client still sends (such as a body we ignored) so
    the close does not reset the connection before the client has read the answer."""
    conn.shutdown(socket.SHUT_WR)
    conn.settimeout(DRAIN_SECONDS)
    deadline = time.monotonic() + DRAIN_SECONDS
    with contextlib.suppress(OSError):
        while time.monotonic() < deadline and conn.recv(65536):
            pass
