# SPDX-License-Identifier: GPL-3.0-or-later
"""The fault and security suite: mirrord tried the way a hostile local user and an unlucky week
would try it. Real daemons, a real second user, real symlinks, FIFOs, sockets and floods.

The fixtures of test/integration (an rsync daemon on 127.0.0.1, mirrord processes) are shared.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from test.integration.conftest import (  # noqa: F401  (fixtures, re-exported for this suite)
    mirrord,
    rsync_daemon,
)

SECOND_USER = "mirrortest"


@dataclass(frozen=True)
class SecondUser:
    """An unprivileged user that owns the directories a ``-u`` daemon writes."""

    name: str
    uid: int
    gid: int

    def chown(self, *paths: Path) -> None:
        for path in paths:
            os.lchown(path, self.uid, self.gid)

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run *argv* as this user (the attacker's own actions)."""
        return subprocess.run(argv, user=self.uid, group=self.gid, extra_groups=[], **kwargs)


@pytest.fixture(scope="session")
def second_user() -> SecondUser:
    """A real second user, created with useradd if it does not exist; skipped with a reason
    where that is impossible (not root, no useradd)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the attacks come from a second user that mirrord drops to")
    try:
        entry = pwd.getpwnam(SECOND_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        if not os.path.exists(useradd):
            pytest.skip("cannot create a second user: useradd is not installed")
        made = subprocess.run([useradd, "--system", "--no-create-home", "--shell",
                               "/usr/sbin/nologin", SECOND_USER], capture_output=True, text=True)
        if made.returncode not in (0, 9):  # 9: it exists (made by a parallel run)
            pytest.skip(f"cannot create a second user: {made.stderr.strip()}")
        entry = pwd.getpwnam(SECOND_USER)
    return SecondUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's tmp_path is root's own, mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="mirror-sec-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
