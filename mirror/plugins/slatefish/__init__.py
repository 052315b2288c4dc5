# SPDX-License-Identifier: GPL-3.0-or-later
"""SlateFish: mirrord's web status page, JSON API, tunasync feed and Prometheus metrics.

Serves on ``[slatefish] listen`` (default 127.0.0.1:8000) from its own threads;
each request takes a snapshot of the daemon, so the page is always current
and the scheduler never waits for a client. A reload that changes ``listen``
moves the server to the new address. See docs/plugins.md.

This module stays light: ``mirrord --check`` imports it to read SETTINGS. The
server is imported by :meth:`SlateFish.enable`; prometheus_client, and the code
of each document, at the first request for it (see
:mod:`mirror.plugins.slatefish.app`).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from mirror.plugin import PluginBase, ReloadEvent, Setting
from mirror.plugins.slatefish.listen import Address, address_text, parse_listen

if TYPE_CHECKING:
    from mirror.plugins.slatefish.app import StatusApplication
    from mirror.plugins.slatefish.server import HttpServer

log = logging.getLogger(__name__)

DEFAULT_LISTEN: Address = ("127.0.0.1", 8000)

__all__ = ["SlateFish"]


class SlateFish(PluginBase):
    """The status page plugin. Settings: ``listen`` (HOST:PORT)."""

    SETTINGS: ClassVar[tuple[Setting[Any], ...]] = (
        Setting("listen", parse_listen, DEFAULT_LISTEN,
                "HOST:PORT to serve on, e.g. 127.0.0.1:8000, 0.0.0.0:8000 or [::1]:8000"),
    )

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._application: StatusApplication | None = None
        self._server: HttpServer | None = None

    def enable(self) -> None:
        """Start serving on ``listen`` and follow reloads.

        Raises:
            mirror.plugins.slatefish.server.ListenError: the address cannot be listened on
                (the message names it, e.g. "cannot listen on 127.0.0.1:8000: Address
                already in use"); the daemon then goes on without the plugin.
        """
        from mirror.plugins.slatefish.app import StatusApplication
        from mirror.plugins.slatefish.runtally import RunTally

        tally = RunTally()
        self._application = StatusApplication(self.host, tally)
        self._serve(self.settings["listen"])
        self.host.register_event_handler("ReloadEvent", self._on_reload)
        self.host.register_event_handler("RunFinishedEvent", tally.observe)

    def disable(self) -> None:
        """Stop the server and close its sockets (on the plugin's thread, at daemon stop)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
            log.info("status page stopped")

    def _serve(self, address: Address) -> None:
        """Start a server on *address*. Raises ListenError."""
        from mirror.plugins.slatefish.server import HttpServer

        assert self._application is not None
        server = HttpServer(address, self._application)
        server.start()
        self._server = server
        log.info("status page on http://%s/", address_text(address))

    def _on_reload(self, event: ReloadEvent) -> None:
        """Move to the new ``listen`` address if it changed; stay put if it cannot be used."""
        from mirror.plugins.slatefish.server import ListenError

        section = event.plugin_sections.get(self.name.lower(), {})
        try:
            address = parse_listen(section["listen"]) if "listen" in section else DEFAULT_LISTEN
        except ValueError as problem:  # the daemon refuses such a reload; this is a safeguard
            log.error("status page: [%s] listen: %s; staying where it is",
                      self.name.lower(), problem)
            return
        current = self._server.address if self._server is not None else None
        if address == current:
            return
        if self._server is not None:
            self._server.stop()
            self._server = None
        try:
            self._serve(address)
        except ListenError as problem:
            if current is None:
                log.error("status page: %s; it is off until the next reload or restart", problem)
                return
            log.error("status page: %s; staying on http://%s/", problem, address_text(current))
            try:
                self._serve(current)
            except ListenError as again:
                log.error("status page: %s; it is off until the next reload or restart", again)
