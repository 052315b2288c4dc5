# SPDX-License-Identifier: GPL-3.0-or-later
"""Telling systemd how the daemon is doing (sd_notify(3)), for ``Type=notify`` units.

Messages go as one datagram to the AF_UNIX socket named by ``$NOTIFY_SOCKET``
(a path, or ``@name`` for the abstract namespace). Without the variable, as
outside systemd, nothing is sent.
"""
from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends state changes to systemd; every method is a no-op without ``$NOTIFY_SOCKET``."""

    def __init__(self, address: str | None = None) -> None:
        """*address* defaults to ``$NOTIFY_SOCKET``, which is then taken out of the
        environment so that the syncs' processes do not inherit it."""
        self.address = address if address is not None else os.environ.pop("NOTIFY_SOCKET",
                                                                          None)
        self._last_status: str | None = None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` lines as one message.

        Returns:
            True if it was sent; a failure is logged and never raised, since systemd not
            hearing must not stop the syncs.
        """
        if not self.address:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), target)
        except OSError as problem:
            log.warning("cannot notify systemd at %s: %s", self.address, problem)
            return False
        return True

    def ready(self, status: str) -> None:
        """Start-up (or a reload) is complete."""
        self._last_status = status
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self) -> None:
        """A reload begins (systemd wants the monotonic time with it)."""
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> None:
        """The daemon is shutting down."""
        self.send("STOPPING=1")

    def status(self, status: str) -> None:
        """A new one-line status for ``systemctl status``; repeated texts are not resent."""
        if status != self._last_status:
            self._last_status = status
            self.send(f"STATUS={status}")
