# SPDX-License-Identifier: GPL-3.0-or-later
"""A pidfile held with flock: one daemon per pidfile, and a stale file never blocks a start.

The lock, not the file's existence, says whether a daemon runs: a file left by
``kill -9`` is unlocked, so the next daemon takes it over.
"""
from __future__ import annotations

import contextlib
import fcntl
import os

from mirror.i18n import _
from mirror.safeopen import open_file


class AlreadyRunning(Exception):
    """Another daemon holds the pidfile; ``pid`` is its pid, if it could be read."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        shown = str(pid) if pid is not None else "?"
        super().__init__(_("already running (pid {pid}, pidfile {path})").format(
            pid=shown, path=path))


class PidFile:
    """An exclusively locked pidfile."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Open and lock the file.

        The file is opened without following links (mirrord.pid may sit in a directory the
        mirror user owns), and only truncated once it is known to be our regular file.

        Raises:
            AlreadyRunning: another process holds the lock.
            UnsafePath: the path is a symbolic link, a FIFO, a hard link, someone else's….
            OSError: the file cannot be created.
        """
        fd = open_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(self.path, read_pid(self.path)) from None
        os.ftruncate(fd, 0)  # a stale pid must not be signalled before write() records ours
        self._fd = fd

    def adopt(self, fd: int) -> None:
        """Hold the lock an earlier image of this process took (:mod:`mirror.reexec`): *fd*
        is that image's open, locked descriptor of the file."""
        self._fd = fd

    @property
    def fd(self) -> int | None:
        return self._fd

    def write(self, pid: int) -> None:
        """Record *pid* (after detaching, the pid has changed but the lock is kept)."""
        assert self._fd is not None, "acquire() first"
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{pid}\n".encode(), 0)
        os.fsync(self._fd)

    def release(self) -> None:
        """Remove the file and drop the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):  # gone, or the directory is not ours to write
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


def read_pid(path: str) -> int | None:
    """The pid in *path*, or None if the file is missing, empty or not a number."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    return int(text) if text.isdigit() else None


def locked_pid(path: str) -> int | None:
    """The pid of the daemon holding *path*, or None when no daemon holds it (stale or absent).

    Raises:
        ForgedPidFile: the file is locked, but the pid it names does not have it open (the
            file's owner wrote another process's pid into it).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = read_pid(path)
        if pid is not None and not _has_open(pid, os.fstat(fd)):
            raise ForgedPidFile(path, pid) from None
        return pid
    finally:
        os.close(fd)
    return None


class ForgedPidFile(Exception):
    """A locked pidfile names a process that does not hold it; it is not signalled."""

    def __init__(self, path: str, pid: int) -> None:
        self.path = path
        self.pid = pid
        super().__init__(_("the pidfile {path} names pid {pid}, which does not hold it open; "
                           "not signalling it (check who wrote the file)").format(
                               path=path, pid=pid))


def _has_open(pid: int, target: os.stat_result) -> bool:
    """Whether process *pid* has the file *target* open; True when that cannot be seen
    (another user's process: the kernel refuses to signal it anyway)."""
    directory = f"/proc/{pid}/fd"
    try:
        descriptors = os.listdir(directory)
    except PermissionError:
        return True
    except OSError:
        return False
    for name in descriptors:
        with contextlib.suppress(OSError):
            info = os.stat(os.path.join(directory, name))
            if (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino):
                return True
    return False
