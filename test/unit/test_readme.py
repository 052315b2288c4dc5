# SPDX-License-Identifier: GPL-3.0-or-later
"""The README's quick start, CI, and the bundled configs agree with each other."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_quick_start_has_exactly_two_commands():
    install, tests = quick_start_commands()
    assert "pip install ." in install and "mirrord -c config/demo" in install
    assert "pytest" in tests and "'.[test]'" in tests


def test_ci_runs_the_readme_test_command():
    _, tests = quick_start_commands()
    assert f"({tests})" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("config", ["config", "config/demo"])
def test_bundled_configs_check_clean(config):
    result = subprocess.run([sys.executable, "-m", "mirror", "-c", str(ROOT / config), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    assert "0 errors, 0 warnings" in result.stdout


def test_the_example_configs_show_every_key():
    """config/mirror.ini sets (or shows, commented out) every key mirror reads, and
    config/plugin.ini every setting of every built-in plugin."""
    from mirror.config import GENERAL_KEYS
    from mirror.kinds import task_keys
    from mirror.pluginsettings import discover

    def keys(path: Path) -> set[str]:
        found = set()
        for line in path.read_text().splitlines():
            match = re.match(r"\s*;?\s*([a-z_]+(?:\[\])?)\s*=", line)
            if match:
                found.add(match.group(1))
        return found

    assert set(GENERAL_KEYS) | set(task_keys()) <= keys(ROOT / "config" / "mirror.ini")
    plugin_keys = keys(ROOT / "config" / "plugin.ini")
    for entry in discover():
        if entry.value.startswith("mirror.plugins."):
            for setting in entry.load().SETTINGS:
                assert setting.key in plugin_keys, (entry.name, setting.key)
