# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by all tests: they compare English messages, so mirror (and every mirrord they
start) speaks English whatever language the environment asks for. test_translations.py
asks for Chinese explicitly."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def pytest_configure(config) -> None:
    os.environ["LANGUAGE"] = "C"  # gettext reads LANGUAGE first; C means untranslated
    from mirror import i18n

    i18n.activate()


def _readable_by_everyone(path: str) -> bool:
    """Whether every user can reach and read *path* (by its mode bits and its ancestors')."""
    import stat

    current = os.path.realpath(path)
    if not os.stat(current).st_mode & stat.S_IROTH:
        return False
    while current != "/":
        current = os.path.dirname(current)
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return False
    return True


@pytest.fixture(scope="session")
def python_for_users() -> Iterator[str]:
    """A Python interpreter, with mirror importable, that every user can read: for daemons
    that switch to another user with -u. The test's own interpreter if it is readable;
    otherwise a venv in /tmp made from Debian's /usr/bin/python3 (pyenv's lives under
    /root, mode 0700). Skipped with the reason when neither is possible."""
    import shutil
    import subprocess
    import sys
    import tempfile

    if _readable_by_everyone(os.__file__) and _readable_by_everyone(sys.executable):
        yield sys.executable
        return
    base = shutil.which("python3", path="/usr/bin:/bin")
    if base is None:
        pytest.skip(f"{sys.executable} cannot be read by other users and /usr/bin/python3 "
                    "is missing to make one that can")
    home = tempfile.mkdtemp(prefix="mirror-python-", dir="/tmp")
    os.chmod(home, 0o755)
    venv = os.path.join(home, "venv")
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    made = subprocess.run(f"{base} -m venv {venv} && {venv}/bin/pip install -q "
                          f"--disable-pip-version-check -e {repository}", shell=True,
                          capture_output=True, text=True)
    if made.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(f"cannot make a venv other users can read: {made.stderr[-500:]}")
    yield os.path.join(venv, "bin", "python")
    shutil.rmtree(home, ignore_errors=True)
