# SPDX-License-Identifier: GPL-3.0-or-later
"""System conditions for admission: the 5-minute load and HTTP connections.

Read once per scheduling pass, through SystemProbe, which tests can replace.
"""
from __future__ import annotations

import logging
import os

from mirror.policy import Conditions
from mirror.task import GeneralSettings

log = logging.getLogger(__name__)


class SystemProbe:
    """Reads the load average and counts established TCP connections to *httpports*."""

    def conditions(self, general: GeneralSettings, running: int) -> Conditions:
        """The conditions now. Connections are only counted when httpconn limits them."""
        load = os.getloadavg()[1] if general.loadlimit > 0 else 0.0
        connections = self.http_connections(general.httpports) if general.httpconn > 0 else 0
        return Conditions(load=load, http_connections=connections, running=running)

    def http_connections(self, ports: tuple[int, ...]) -> int:
        """Established TCP connections whose local port is one of *ports*."""
        import psutil  # only paid for when httpconn is set

        wanted = set(ports)
        try:
            connections = psutil.net_connections(kind="tcp")
        except (psutil.AccessDenied, OSError) as error:
            log.warning("cannot count HTTP connections: %s", error)
            return 0
        return sum(1 for connection in connections
                   if connection.status == psutil.CONN_ESTABLISHED and connection.laddr
                   and connection.laddr.port in wanted)
