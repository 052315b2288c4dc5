# SPDX-License-Identifier: GPL-3.0-or-later
"""Bytes on the wire to an HTTP server on 127.0.0.1, for the status page's tests."""
from __future__ import annotations

import socket


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send *data* as is and read the whole answer, until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer
