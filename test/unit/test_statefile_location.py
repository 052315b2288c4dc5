# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the state file goes when mirror.ini does not say."""
from __future__ import annotations

import os
import re

from mirror.lifecycle import SYSTEM_STATEFILE, default_statefile
from mirror.locations import locate_config


def test_systemds_state_directory_comes_first(monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/mirror:/var/lib/other")
    assert default_statefile() == "/var/lib/mirror/state.json"


def test_otherwise_by_user(monkeypatch, tmp_path):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    expected = SYSTEM_STATEFILE if os.geteuid() == 0 else str(tmp_path / "mirror" / "state.json")
    assert default_statefile() == expected


def test_each_config_directory_has_its_own_state_file(monkeypatch, tmp_path):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/mirror")
    monkeypatch.setattr("mirror.lifecycle.default_config_dir", lambda: tmp_path / "default")
    default = locate_config(str(tmp_path / "default"))
    assert default_statefile(default) == "/var/lib/mirror/state.json"
    first = default_statefile(locate_config(str(tmp_path / "site a" / "conf")))
    second = default_statefile(locate_config(str(tmp_path / "site-b" / "conf")))
    assert re.fullmatch(r"/var/lib/mirror/state-conf-[0-9a-f]{8}\.json", first)
    assert re.fullmatch(r"/var/lib/mirror/state-conf-[0-9a-f]{8}\.json", second)
    assert first != second
    # The same directory, however it is written, keeps its file.
    assert default_statefile(locate_config(str(tmp_path / "site a" / "conf" / "mirror.ini"))) \
        == first
