# SPDX-License-Identifier: GPL-3.0-or-later
"""System conditions: real TCP connections on loopback, counted by port."""
from __future__ import annotations

import socket

import pytest

from mirror.sysinfo import SystemProbe
from mirror.task import GeneralSettings


@pytest.fixture
def three_connections():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    accepted = [server.accept()[0] for _ in clients]
    yield port
    for sock in clients + accepted + [server]:
        sock.close()


def test_counts_established_connections_to_the_ports(three_connections):
    probe = SystemProbe()
    assert probe.http_connections((three_connections,)) == 3
    conditions = probe.conditions(GeneralSettings(httpconn=10, httpports=(three_connections,)), 2)
    assert (conditions.http_connections, conditions.running) == (3, 2)
    assert conditions.load >= 0


def test_no_connection_table_is_read_when_httpconn_is_0(monkeypatch):
    probe = SystemProbe()
    monkeypatch.setattr(probe, "http_connections", lambda ports: pytest.fail("read"))
    conditions = probe.conditions(GeneralSettings(httpconn=0, loadlimit=0), 0)
    assert (conditions.http_connections, conditions.load) == (0, 0.0)
