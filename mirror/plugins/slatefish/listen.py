# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``listen`` setting: ``HOST:PORT``, with IPv6 hosts in brackets.

Kept free of heavy imports: ``mirrord --check`` loads it to validate plugin.ini.
"""
from __future__ import annotations

import ipaddress
import re

from mirror.i18n import _

# A host name as RFC 1123 allows it: dot-separated labels of letters, digits and inner hyphens.
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")

Address = tuple[str, int]


def _examples() -> str:
    return _("127.0.0.1:8000, 0.0.0.0:8000 or [::1]:8000")


def parse_listen(text: str) -> Address:
    """Read ``HOST:PORT`` (``[IPV6]:PORT`` for IPv6).

    Returns:
        (host, port); host without brackets.

    Raises:
        ValueError: not HOST:PORT, a bad host, or a port outside 1–65535; the
            message says what is allowed.
    """
    value = text.strip()
    problem = ValueError(_("'{text}' is not HOST:PORT (use e.g. {example})")
                         .format(text=text, example=_examples()))
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise problem
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(_("'{host}' in '{text}' is not an IPv6 address (use e.g. [::1]:8000)")
                             .format(host=host, text=text)) from None
        port_text = rest[1:]
    else:
        host, colon, port_text = value.rpartition(":")
        if not colon or not host:
            raise problem
        if ":" in host:
            raise ValueError(_("'{text}': put an IPv6 address in brackets, e.g. [::1]:8000")
                             .format(text=text))
        if not _HOST_NAME.fullmatch(host):
            raise ValueError(_("'{host}' in '{text}' is not an IP address or host name "
                               "(use e.g. {example})").format(host=host, text=text,
                                                             example=_examples()))
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(_("'{port}' in '{text}' is not a port number (1–65535)")
                         .format(port=port_text, text=text))
    return host, int(port_text)


def address_text(address: Address) -> str:
    """``HOST:PORT`` as parse_listen reads it back: ``[::1]:8000`` for IPv6."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
