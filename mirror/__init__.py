# SPDX-License-Identifier: GPL-3.0-or-later
"""mirror: keep an open-source mirror site in sync with its upstreams."""

__version__ = "0.9.0"
