# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the state file goes when mirror.ini does not say."""
from __future__ import annotations

import os

from mirror.lifecycle import SYSTEM_STATEFILE, default_statefile


def test_systemds_state_directory_comes_first(monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/mirror:/var/lib/other")
    assert default_statefile() == "/var/lib/mirror/state.json"


def test_otherwise_by_user(monkeypatch, tmp_path):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    expected = SYSTEM_STATEFILE if os.geteuid() == 0 else str(tmp_path / "mirror" / "state.json")
    assert default_statefile() == expected
