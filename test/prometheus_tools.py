# SPDX-License-Identifier: GPL-3.0-or-later
"""What the Prometheus tests share: the shipped files and Debian's tools."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHIPPED = Path(__file__).resolve().parents[1] / "util" / "prometheus"


def prometheus_tool(name: str) -> str:
    """The path of *name* (promtool, amtool, prometheus, prometheus-alertmanager); the test
    fails with the package to install when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (apt-get install prometheus "
                    "prometheus-alertmanager)")
    return path
