# SPDX-License-Identifier: GPL-3.0-or-later
"""The control socket: newline-delimited JSON over a Unix socket (mode 0600), server and client.

A request is one JSON object on one line, ``{"command": "queue"}``; the reply
is one JSON object on one line, with ``"ok": true`` or ``"ok": false`` and an
``"error"`` that says what is wrong. The server runs inside the daemon's loop
(non-blocking, driven by its selector); a request may be answered later, as
``run`` with ``wait`` is when the run ends.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
from collections.abc import Callable

from mirror.i18n import _

MAX_REQUEST = 64 * 1024
COMMANDS = ("queue", "status", "run", "cancel")


class Connection:
    """One client connection: its input buffer and pending output."""

    def __init__(self, server: ControlServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.inbox = b""
        self.outbox = b""
        self.closed = False

    def reply(self, message: dict[str, object]) -> None:
        """Send *message* and close the connection once it is written."""
        if self.closed:
            return
        self.outbox = (json.dumps(message, ensure_ascii=False) + "\n").encode()
        self.server.selector.modify(self.sock, selectors.EVENT_WRITE, self._on_writable)

    def _receive(self) -> bytes | None:
        """Bytes from the client; None when there are none yet. Closes on end of stream."""
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            data = b""
        if not data:
            self.close()
            return None
        return data

    def _on_readable(self, _mask: int) -> None:
        data = self._receive()
        if data is None:
            return
        self.inbox += data
        if b"\n" not in self.inbox:
            if len(self.inbox) > MAX_REQUEST:
                self.reply(error(_("request longer than {size} bytes").format(size=MAX_REQUEST)))
            return
        line = self.inbox.split(b"\n", 1)[0]
        self.server.selector.modify(self.sock, selectors.EVENT_READ, self._on_hangup)
        answer = self.server.dispatch(line, self)
        if answer is not None:
            self.reply(answer)

    def _on_hangup(self, _mask: int) -> None:
        """A parked client sent more (ignored) or went away (the connection closes)."""
        self._receive()

    def _on_writable(self, _mask: int) -> None:
        try:
            sent = self.sock.send(self.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        self.outbox = self.outbox[sent:]
        if not self.outbox:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(KeyError, ValueError):
            self.server.selector.unregister(self.sock)
        self.sock.close()
        self.server.connections.discard(self)
        self.server.resume()


def error(message: str, **extra: object) -> dict[str, object]:
    """An error reply."""
    return {"ok": False, "error": message, **extra}


Handler = Callable[[dict, Connection], "dict | None"]


class ControlServer:
    """Listens on *path*; hands each parsed request to *handler*.

    The handler returns the reply, or None when it will call ``connection.reply`` later.
    """

    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.selector: selectors.BaseSelector
        self.sock: socket.socket | None = None
        self.connections: set[Connection] = set()
        self.paused = False

    def bind(self) -> None:
        """Create the socket, mode 0600 from the start (no window where others could connect).

        Raises:
            OSError: the path is too long, or its directory not writable.
        """
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_mask = os.umask(0o177)
        try:
            sock.bind(self.path)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_mask)
        sock.listen(64)
        sock.setblocking(False)
        self.sock = sock

    def attach(self, selector: selectors.BaseSelector) -> None:
        """Start accepting connections through *selector*."""
        assert self.sock is not None, "bind() first"
        self.selector = selector
        selector.register(self.sock, selectors.EVENT_READ, self._on_acceptable)

    def _on_acceptable(self, _mask: int) -> None:
        assert self.sock is not None
        while True:
            try:
                client, _address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as problem:
                # Out of descriptors: stop listening until a connection closes, or the
                # listening socket would stay readable and spin the loop.
                logging.getLogger(__name__).error("cannot accept a control connection: %s",
                                                  problem)
                self.selector.unregister(self.sock)
                self.paused = True
                return
            client.setblocking(False)
            connection = Connection(self, client)
            self.connections.add(connection)
            self.selector.register(client, selectors.EVENT_READ, connection._on_readable)

    def resume(self) -> None:
        """Listen again after running out of descriptors, once one is free."""
        if self.paused and self.sock is not None:
            self.paused = False
            self.selector.register(self.sock, selectors.EVENT_READ, self._on_acceptable)

    def dispatch(self, line: bytes, connection: Connection) -> dict | None:
        """Parse one request line and hand it to the handler; malformed requests get an error."""
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as problem:
            return error(_("the request is not a JSON object on one line ({reason})").format(
                reason=problem))
        if not isinstance(request, dict):
            return error(_("the request must be a JSON object, such as {example}").format(
                example='{"command": "queue"}'))
        command = request.get("command")
        if command not in COMMANDS:
            return error(_("unknown command {command!r}; known commands: {known}").format(
                command=command, known=", ".join(COMMANDS)))
        try:
            return self.handler(request, connection)
        except Exception as problem:  # a bug in one request must not end the daemon
            logging.getLogger(__name__).exception("control request %r failed", request)
            return error(_("mirrord could not answer: {reason}").format(reason=problem))

    def close(self, flush_seconds: float = 0.0) -> None:
        """Close every connection and the socket, and remove the socket file.

        Replies already queued are sent first, waiting up to *flush_seconds* each.
        """
        for connection in list(self.connections):
            if connection.outbox and flush_seconds > 0:
                with contextlib.suppress(OSError):
                    connection.sock.settimeout(flush_seconds)
                    connection.sock.sendall(connection.outbox)
            connection.close()
        if self.sock is not None:
            with contextlib.suppress(KeyError, ValueError, AttributeError):
                self.selector.unregister(self.sock)
            self.sock.close()
            self.sock = None
            with contextlib.suppress(OSError):
                os.unlink(self.path)


class DaemonUnavailable(Exception):
    """No daemon answers on the socket."""


def request(path: str, message: dict[str, object], timeout: float | None = 10.0) -> dict:
    """Send one request to the daemon at *path* and return its reply.

    Args:
        path: the control socket.
        message: the request object.
        timeout: seconds to wait for the reply; None waits for ever (``--run --wait``).

    Raises:
        DaemonUnavailable: nothing listens on *path*, or the daemon went away.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as problem:
            raise DaemonUnavailable(_("no mirrord is running (nothing answers on {path}: "
                                      "{reason})").format(path=path, reason=problem.strerror)) \
                from None
        except PermissionError:
            raise DaemonUnavailable(_("not allowed to use {path}; run as the daemon's user")
                                    .format(path=path)) from None
        sock.sendall((json.dumps(message) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            try:
                chunk = sock.recv(1 << 20)
            except socket.timeout:
                raise DaemonUnavailable(_("mirrord did not answer within {seconds:g} s")
                                        .format(seconds=timeout)) from None
            if not chunk:
                raise DaemonUnavailable(_("mirrord closed the connection without an answer"))
            data += chunk
        return json.loads(data.decode("utf-8"))
    finally:
        sock.close()
