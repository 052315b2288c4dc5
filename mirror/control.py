# SPDX-License-Identifier: GPL-3.0-or-later
"""The control socket: newline-delimited JSON over a Unix socket (mode 0600), server and client.

A request is one JSON object on one line, ``{"command": "queue"}``; the reply
is one JSON object on one line, with ``"ok": true`` or ``"ok": false`` and an
``"error"`` that says what is wrong. The server runs inside the daemon's loop
(non-blocking, driven by its selector); a request may be answered later, as
``run`` with ``wait`` is when the run ends.

The server defends the daemon against its clients (see "Control" in docs/daemon.md):

* at most ``max_connections`` connections at once; more are accepted and closed at once
  with a one-line error, and so are all while fewer than a reserve of descriptors would stay
  free (:class:`mirror.fdlimits.DescriptorReserve`), so that a flood never takes the
  descriptors of a sync's log or of the state file;
* a client has ``request_timeout`` seconds from connecting to send its request line, and
  ``write_timeout`` seconds to read its reply; a connection parked by ``run`` with ``wait``
  has no deadline while it waits;
* replies waiting for slow readers hold at most ``output_budget`` bytes in all; a large reply
  beyond that is replaced by a short "busy" error;
* every request is checked by shape (:func:`validate_request`) before the handler sees it.

The loop never polls: it sleeps until :meth:`ControlServer.next_deadline` and then calls
:meth:`ControlServer.expire`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import time
from collections.abc import Callable
from typing import Any

from mirror.fdlimits import DEFAULT_RESERVE, DescriptorReserve
from mirror.i18n import _

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024
COMMANDS = ("queue", "status", "run", "cancel", "info", "restart")
# The fields each command may carry; "command" itself is always required.
FIELDS: dict[str, tuple[str, ...]] = {
    "queue": ("command",),
    "status": ("command",),
    "run": ("command", "name", "wait"),
    "cancel": ("command", "name"),
    "info": ("command",),
    "restart": ("command",),
}
NAMED = ("run", "cancel")  # the commands that need "name"
READ_ONLY = ("queue", "status")  # no side effect, possibly large replies

MAX_CONNECTIONS = 128  # open at once, parked ``run --wait`` clients included
REQUEST_TIMEOUT = 10.0  # seconds from connecting to the end of the request line
WRITE_TIMEOUT = 10.0  # seconds for a client to read its whole reply
OUTPUT_BUDGET = 32 * 1024 * 1024  # bytes of replies held for all clients together
SMALL_REPLY = 4096  # replies this short always go out (run, cancel, errors)
DESCRIPTOR_RESERVE = DEFAULT_RESERVE  # descriptors kept free for syncs and the state file
REFUSAL_REPORT_SECONDS = 60.0  # refused clients are logged at most this often, with a count
ACCEPT_RETRY_SECONDS = 1.0  # after accept() itself failed (no descriptor at all)
LISTEN_BACKLOG = 64  # also the most connections accepted per wakeup of the loop
VALUE_SHOWN = 40  # characters of a wrong value quoted back in an error
CONNECT_RETRY_SECONDS = 0.05  # a client's pause while the daemon's queue of connections is full

READING, WAITING, WRITING = "reading", "waiting", "writing"


def _shown(value: object) -> str:
    """*value* as JSON (repr when it is no JSON), cut to VALUE_SHOWN characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= VALUE_SHOWN else text[:VALUE_SHOWN - 1] + "…"


def validate_request(message: object) -> str | None:
    """Check a control request by shape, before any handler sees it.

    Args:
        message: the parsed request (from the socket, or a plugin's dict).

    Returns:
        None for a well-formed request: a dict whose ``command`` is one of COMMANDS, with
        only that command's fields, a string ``name`` for ``run`` and ``cancel``, and
        ``wait`` (``run`` only) true or false. Otherwise the error text, translated, naming
        the field and saying what is allowed. Never raises.
    """
    if not isinstance(message, dict):
        return _("the request must be a JSON object, such as {example}").format(
            example='{"command": "queue"}')
    known = ", ".join(COMMANDS)
    if "command" not in message:
        return _('the request has no "command"; known commands: {known}').format(known=known)
    command = message["command"]
    if not isinstance(command, str):
        return _('"command" must be a string, one of: {known}; not {value}').format(
            known=known, value=_shown(command))
    if command not in COMMANDS:
        return _("unknown command {command!r}; known commands: {known}").format(
            command=command, known=known)
    allowed = FIELDS[command]
    unknown = [key for key in message if key not in allowed]
    if unknown:
        shown = ", ".join(_shown(key) for key in unknown)
        text = (_("unknown field {fields} in a {command} request; allowed fields: {allowed}")
                if len(unknown) == 1 else
                _("unknown fields {fields} in a {command} request; allowed fields: {allowed}"))
        return text.format(fields=shown, command=command, allowed=", ".join(allowed))
    if command in NAMED:
        if "name" not in message:
            return _('{command} needs "name", the name of a task (a string)').format(
                command=command)
        if not isinstance(message["name"], str):
            return _('"name" must be a string, the name of a task; not {value}').format(
                value=_shown(message["name"]))
    if "wait" in message and not isinstance(message["wait"], bool):
        return _('"wait" must be true or false; not {value}').format(
            value=_shown(message["wait"]))
    return None


def _encode(message: dict[str, object]) -> bytes:
    return (json.dumps(message, ensure_ascii=False) + "\n").encode()


class Connection:
    """One client connection: its input buffer, its pending output and its deadline.

    A connection is *reading* (until its request line is in; deadline: accepted +
    request_timeout), *waiting* (the handler will call :meth:`reply` later; no deadline) or
    *writing* (deadline: reply + write_timeout); it closes once its reply is written.
    """

    def __init__(self, server: ControlServer, sock: socket.socket, deadline: float) -> None:
        self.server = server
        self.sock = sock
        self.inbox = b""
        self.phase = READING
        self.deadline: float | None = deadline
        self.closed = False
        self._held = b""  # the reply bytes still held in memory (counted in the budget)
        self._unsent = memoryview(b"")  # the part of _held not yet sent

    def reply(self, message: dict[str, object]) -> None:
        """Send *message* and close the connection once it is written.

        Only the first reply counts; later ones, and replies to a closed connection, are
        dropped. A reply longer than SMALL_REPLY that would take the bytes held for clients
        over the server's output budget is replaced by a short "busy" error. Never raises
        for the client's sake: a client that went away is simply closed.
        """
        if self.closed or self.phase == WRITING:
            return
        data = _encode(message)
        if not self.server.may_hold(len(data)):
            self.server.note_refusal("reply over the output budget")
            data = _encode(self.server.busy_reply(output=True))
        self.phase = WRITING
        self.deadline = self.server.monotonic() + self.server.write_timeout
        self._hold(data)
        if self._write():
            self.close()
        else:
            self.server.selector.modify(self.sock, selectors.EVENT_WRITE, self._on_writable)

    def _hold(self, data: bytes) -> None:
        self.server.buffered += len(data) - len(self._held)
        self._held = data
        self._unsent = memoryview(data)

    def _write(self) -> bool:
        """Send what the socket takes now. Returns True when done: all sent, or the client
        is gone."""
        try:
            sent = self.sock.send(self._unsent)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        self._unsent = self._unsent[sent:]
        if not self._unsent:
            return True
        if sent and len(self._unsent) * 2 <= len(self._held):
            self._hold(bytes(self._unsent))  # let what was sent be freed
        return False

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

    def read_pending(self) -> None:
        """Read what the client has sent, as when the socket is readable; never blocks."""
        self._on_readable(selectors.EVENT_READ)

    def _on_readable(self, _mask: int) -> None:
        data = self._receive()
        if data is None:
            return
        self.inbox += data
        if b"\n" not in data:
            if len(self.inbox) > MAX_REQUEST:
                self.reply(error(_("request longer than {size} bytes").format(size=MAX_REQUEST)))
            return
        line = self.inbox.split(b"\n", 1)[0]
        self.inbox = b""
        # Parked until the handler answers; a reply made inside the handler sets the
        # write deadline.
        self.phase = WAITING
        self.deadline = None
        self.server.selector.modify(self.sock, selectors.EVENT_READ, self._on_hangup)
        answer = self.server.dispatch(line, self)
        if answer is not None:
            self.reply(answer)

    def _on_hangup(self, _mask: int) -> None:
        """A parked client sent more (ignored) or went away (the connection closes)."""
        self._receive()

    def _on_writable(self, _mask: int) -> None:
        if self._write():
            self.close()

    def close(self) -> None:
        """Close the connection (a reply not yet sent is dropped); idempotent."""
        if self.closed:
            return
        self.closed = True
        self.server.buffered -= len(self._held)
        self._held = b""
        self._unsent = memoryview(b"")
        with contextlib.suppress(KeyError, ValueError, AttributeError):
            self.server.selector.unregister(self.sock)
        self.sock.close()
        self.server.connections.discard(self)
        self.server.resume()


def error(message: str, **extra: object) -> dict[str, object]:
    """An error reply."""
    return {"ok": False, "error": message, **extra}


Handler = Callable[[dict[str, Any], Connection], "dict[str, Any] | None"]


class ControlServer:
    """Listens on *path*; hands each well-formed request to *handler*.

    The handler returns the reply, or None when it will call ``connection.reply`` later.

    Args:
        path: the socket's path.
        handler: called in the loop with the request (checked by :func:`validate_request`)
            and its connection.
        max_connections: connections open at once, parked ones included; more are refused.
        request_timeout: seconds a client has, from connecting, to send its request line.
        write_timeout: seconds a client has to read its whole reply.
        output_budget: bytes of replies held for all clients together.
        descriptors: decides whether a new connection leaves enough descriptors free;
            by default one that keeps DESCRIPTOR_RESERVE free below the soft limit.
        monotonic: the clock of the deadlines (the daemon's, so that tests can drive it).
    """

    def __init__(self, path: str, handler: Handler, *,
                 max_connections: int = MAX_CONNECTIONS,
                 request_timeout: float = REQUEST_TIMEOUT,
                 write_timeout: float = WRITE_TIMEOUT,
                 output_budget: int = OUTPUT_BUDGET,
                 descriptors: DescriptorReserve | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.handler = handler
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.output_budget = output_budget
        self.descriptors = descriptors or DescriptorReserve(DESCRIPTOR_RESERVE)
        self.monotonic = monotonic
        self.selector: selectors.BaseSelector
        self.sock: socket.socket | None = None
        self.connections: set[Connection] = set()
        self.buffered = 0  # bytes of replies held for clients
        self.paused = False  # accept() failed: not listening until a descriptor is free
        self._retry_at = 0.0  # when a paused server tries accept() again
        self._closing = False
        self._suspended = False  # not accepting while an exec is prepared
        self._refused: dict[str, int] = {}  # reason → clients turned away, not yet logged
        self._reported_at: float | None = None

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
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
        self.sock = sock

    def adopt(self, sock: socket.socket) -> None:
        """Listen on *sock*, the listening socket an earlier image of this process bound
        (:mod:`mirror.reexec`), instead of binding one."""
        self.sock = sock

    def fileno(self) -> int:
        """The listening socket's descriptor."""
        assert self.sock is not None, "bind() first"
        return self.sock.fileno()

    def attach(self, selector: selectors.BaseSelector) -> None:
        """Start accepting connections through *selector*."""
        assert self.sock is not None, "bind() first"
        self.selector = selector
        selector.register(self.sock, selectors.EVENT_READ, self._on_acceptable)

    def suspend(self, flush_seconds: float) -> None:
        """Stop accepting, answer what the clients already connected have asked, and close
        their connections (``run --wait`` clients are told that their run goes on);
        replies are written for up to *flush_seconds*. The listening socket stays open:
        clients that connect meanwhile wait in its backlog until :meth:`unsuspend`, or
        until the next image of mirrord takes it over."""
        self._suspended = True
        if self.sock is not None and not self.paused:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(self.sock)
        for connection in list(self.connections):
            if connection.phase == READING:
                connection.read_pending()
            if connection.phase == WAITING:
                connection.reply(error(_("mirrord is restarting; the run goes on (see "
                                         "--status)")))
        self._flush(flush_seconds)
        for connection in list(self.connections):
            connection.close()

    def unsuspend(self) -> None:
        """Accept connections again after :meth:`suspend`."""
        self._suspended = False
        if self.sock is not None and not self.paused:
            self.selector.register(self.sock, selectors.EVENT_READ, self._on_acceptable)

    # --- accepting ----------------------------------------------------------------------

    def _on_acceptable(self, _mask: int) -> None:
        assert self.sock is not None
        # A bounded number per wakeup: a client that reconnects as fast as it is refused
        # must not keep the loop from its syncs.
        for _attempt in range(LISTEN_BACKLOG):
            try:
                client, _address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as problem:
                self._pause(problem)
                return
            reason = self._refusal(client)
            if reason is not None:
                self._refuse(client, reason)
                continue
            client.setblocking(False)
            connection = Connection(self, client, self.monotonic() + self.request_timeout)
            self.connections.add(connection)
            self.selector.register(client, selectors.EVENT_READ, connection._on_readable)

    def _refusal(self, client: socket.socket) -> str | None:
        """Why *client* cannot be served (a log phrase), or None when it can."""
        if len(self.connections) >= self.max_connections:
            return f"{self.max_connections} connections open already"
        if not self.descriptors.allows(client.fileno()):
            return f"fewer than {self.descriptors.reserve} descriptors would stay free"
        return None

    def _refuse(self, client: socket.socket, reason: str) -> None:
        """Close *client* at once after a best-effort error line; never waits on it."""
        with contextlib.suppress(OSError):
            client.setblocking(False)
            client.send(_encode(self.busy_reply()))
        client.close()
        self.note_refusal(reason)

    def busy_reply(self, output: bool = False) -> dict[str, object]:
        """The reply of a client turned away because mirrord is busy: with too many
        connections or too few descriptors, or (*output*) with too many bytes of replies
        waiting for other clients to read them."""
        if output:
            return error(_("mirrord is busy: replies to other clients are still waiting to "
                           "be read; try again later"))
        return error(_("mirrord is busy: too many clients at once; try again later"))

    def _pause(self, problem: OSError) -> None:
        """accept() failed (no descriptor at all): stop listening, or the listening socket
        would stay readable and spin the loop; listen again when a connection closes, or
        after ACCEPT_RETRY_SECONDS (the descriptors may be held by syncs)."""
        if self.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(self.sock)
        self.paused = True
        self._retry_at = self.monotonic() + ACCEPT_RETRY_SECONDS
        self.note_refusal(f"accept() failed: {problem.strerror or problem}")

    def resume(self) -> None:
        """Listen again after running out of descriptors."""
        if self.paused and self.sock is not None and not self._closing:
            self.paused = False
            if not self._suspended:
                self.selector.register(self.sock, selectors.EVENT_READ, self._on_acceptable)

    def note_refusal(self, reason: str) -> None:
        """Count a client turned away for *reason*; log the counts at most once a minute."""
        self._refused[reason] = self._refused.get(reason, 0) + 1
        now = self.monotonic()
        if self._reported_at is None or now >= self._reported_at + REFUSAL_REPORT_SECONDS:
            self._report_refusals(now)

    def _report_refusals(self, now: float) -> None:
        if self._refused:
            log.warning("control socket: turned away %d clients since the last report (%s); "
                        "reported at most once a minute",
                        sum(self._refused.values()),
                        "; ".join(f"{count}: {reason}"
                                  for reason, count in self._refused.items()))
            self._refused.clear()
        self._reported_at = now

    # --- deadlines ----------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest monotonic time at which :meth:`expire` has something to do: a
        connection times out, a paused server retries accept(), or refusals are due to be
        logged. None when there is nothing. O(connections)."""
        deadlines = [connection.deadline for connection in self.connections
                     if connection.deadline is not None]
        if self.paused:
            deadlines.append(self._retry_at)
        if self._refused and self._reported_at is not None:
            deadlines.append(self._reported_at + REFUSAL_REPORT_SECONDS)
        return min(deadlines, default=None)

    def expire(self, now: float) -> None:
        """Close every connection whose deadline is at or before *now* (logged at debug
        level); retry accept() and log the refusal counts when their time has come.

        Args:
            now: the current time on the server's monotonic clock.
        """
        overdue = [connection for connection in self.connections
                   if connection.deadline is not None and connection.deadline <= now]
        for connection in overdue:
            if connection.phase == READING:
                # What the client sent while the loop was busy (a long reload, say) is read
                # first: only a client that has not sent its request is too slow.
                connection.read_pending()
        overdue = [connection for connection in overdue
                   if not connection.closed and connection.phase != WAITING
                   and connection.deadline is not None and connection.deadline <= now]
        silent = sum(1 for connection in overdue if connection.phase == READING)
        for connection in overdue:
            connection.close()
        if overdue:
            log.debug("control socket: closed %d connections that sent no request within "
                      "%g s and %d that did not read their reply within %g s", silent,
                      self.request_timeout, len(overdue) - silent, self.write_timeout)
        if self.paused and now >= self._retry_at:
            self.resume()
        if (self._refused and self._reported_at is not None
                and now >= self._reported_at + REFUSAL_REPORT_SECONDS):
            self._report_refusals(now)

    # --- requests -----------------------------------------------------------------------

    def may_hold(self, size: int) -> bool:
        """Whether a reply of *size* bytes may be held for a client within the budget."""
        return size <= SMALL_REPLY or self.buffered + size <= self.output_budget

    def dispatch(self, line: bytes, connection: Connection) -> dict[str, Any] | None:
        """Parse one request line, check it and hand it to the handler.

        Returns:
            The reply, or None when the handler will answer later. A malformed request, or
            a read-only one while the output budget is spent, gets an error reply; so does
            a request the handler failed on (logged with its traceback: a bug).
        """
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as unreadable:
            return error(_("the request is not a JSON object on one line ({reason})").format(
                reason=unreadable))
        problem = validate_request(request)
        if problem is not None:
            return error(problem)
        if request["command"] in READ_ONLY and self.buffered >= self.output_budget:
            self.note_refusal("reply over the output budget")
            return self.busy_reply(output=True)
        try:
            return self.handler(request, connection)
        except Exception as problem:  # a bug in one request must not end the daemon
            log.exception("control request %r failed", request)
            return error(_("mirrord could not answer: {reason}").format(reason=problem))

    def close(self, flush_seconds: float = 0.0) -> None:
        """Close every connection and the socket, and remove the socket file.

        Replies already queued are sent first, for up to *flush_seconds* in all (however
        many clients do not read).
        """
        self._closing = True
        self._flush(flush_seconds)
        for connection in list(self.connections):
            connection.close()
        if self.sock is not None:
            with contextlib.suppress(KeyError, ValueError, AttributeError):
                self.selector.unregister(self.sock)
            self.sock.close()
            self.sock = None
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def _flush(self, seconds: float) -> None:
        """Write pending replies for up to *seconds* of real time, all clients together."""
        writing = [connection for connection in self.connections
                   if connection.phase == WRITING and not connection.closed]
        if seconds <= 0 or not writing:
            return
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as flusher:
            for connection in writing:
                flusher.register(connection.sock, selectors.EVENT_WRITE, connection)
            while flusher.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                for key, _mask in flusher.select(left):
                    connection = key.data
                    if connection._write():
                        flusher.unregister(connection.sock)
                        connection.close()


class DaemonUnavailable(Exception):
    """No daemon answers on the socket."""


def _connect(sock: socket.socket, path: str, timeout: float | None) -> None:
    """Connect *sock* to *path*. A socket with a timeout does not wait for room in the
    daemon's queue of new connections (EAGAIN), so try again until *timeout* has passed.

    Raises:
        DaemonUnavailable: the queue stayed full for *timeout* seconds.
        OSError: from connect(), for anything else.
    """
    deadline = time.monotonic() + (timeout if timeout is not None else 0.0)
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise DaemonUnavailable(_("mirrord is busy: too many clients at once; try "
                                          "again later")) from None
            time.sleep(CONNECT_RETRY_SECONDS)


def request(path: str, message: dict[str, object],
            timeout: float | None = 10.0) -> dict[str, Any]:
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
            _connect(sock, path, timeout)
        except (FileNotFoundError, ConnectionRefusedError) as problem:
            raise DaemonUnavailable(_("no mirrord is running (nothing answers on {path}: "
                                      "{reason})").format(path=path, reason=problem.strerror)) \
                from None
        except PermissionError:
            raise DaemonUnavailable(_("not allowed to use {path}; run as the daemon's user")
                                    .format(path=path)) from None
        # Turned away at once (mirrord is busy), the client may find the socket closed
        # before it writes; the one-line answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall((json.dumps(message) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            try:
                chunk = sock.recv(1 << 20)
            except socket.timeout:
                raise DaemonUnavailable(_("mirrord did not answer within {seconds:g} s")
                                        .format(seconds=timeout)) from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise DaemonUnavailable(_("mirrord closed the connection without an answer"))
            data += chunk
        reply: dict[str, Any] = json.loads(data.decode("utf-8"))
        return reply
    finally:
        sock.close()
