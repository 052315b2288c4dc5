# SPDX-License-Identifier: GPL-3.0-or-later
"""Opening files in directories that another user may control, without being tricked.

mirrord starts as root and may run as a mirror user who owns the directories of
its pidfile, state and logs. That user can replace any name in them with a
symbolic link, a hard link, a FIFO or a device, and can swap directories while
root walks a path. So every file mirrord opens for itself is opened here:

* the path is walked one component at a time from ``/`` with ``O_NOFOLLOW``
  descriptors, and a symbolic link is followed only where it sits in a directory
  that only root can change (``/var/run -> /run`` is fine; a link in the mirror
  user's directory is not);
* the file itself is opened with ``O_NOFOLLOW`` and ``O_NONBLOCK`` (a FIFO
  cannot hang the open) and must be a regular file with a single link, owned by
  root or by one of the expected owners;
* nothing is truncated or changed before those checks pass.
"""
from __future__ import annotations

import collections
import contextlib
import errno
import os
import stat

from mirror.i18n import _

MAX_SYMLINKS = 40  # as the kernel allows in one lookup
_PATH = getattr(os, "O_PATH", os.O_RDONLY)


class UnsafePath(OSError):
    """A path mirrord refuses to open; the message names it and says why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(errno.EPERM, reason, path)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return _("{path}: {reason}").format(path=self.path, reason=self.reason)


def _only_root_changes(directory: os.stat_result, link: os.stat_result) -> bool:
    """Whether only root can replace *link* inside *directory*."""
    if directory.st_uid != 0:
        return False
    if directory.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        # In a sticky directory such as /tmp only a link's owner may replace it.
        return bool(directory.st_mode & stat.S_ISVTX) and link.st_uid == 0
    return True


def open_directory(path: str) -> int:
    """Open the directory *path* for use as ``dir_fd`` (an ``O_PATH`` descriptor).

    Symbolic links along the way are followed only where only root can change them.

    Raises:
        UnsafePath: a component is a link that another user could have placed.
        OSError: a component is missing or not a directory.
    """
    todo = collections.deque(os.path.abspath(path).split("/"))
    fd = os.open("/", _PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    walked = ""
    links = 0
    try:
        while todo:
            part = todo.popleft()
            if part in ("", "."):
                continue
            info = os.stat(part, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                if not _only_root_changes(os.fstat(fd), info):
                    raise UnsafePath(f"{walked}/{part}", _(
                        "is a symbolic link in a directory that a user other than root can "
                        "change; give the real path instead"))
                target = os.readlink(part, dir_fd=fd)
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", _PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                    walked = ""
                todo.extendleft(reversed(target.split("/")))
                continue
            following = os.open(part, _PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                dir_fd=fd)
            os.close(fd)
            fd = following
            walked = os.path.normpath(f"{walked}/{part}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return _("a directory")
    if stat.S_ISFIFO(mode):
        return _("a FIFO")
    if stat.S_ISSOCK(mode):
        return _("a socket")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return _("a device")
    return _("not a regular file")


def open_file(path: str, flags: int, mode: int = 0o644,
              owners: tuple[int, ...] = ()) -> int:
    """Open the regular file *path* safely (see the module's description).

    Args:
        path: the file.
        flags: ``os.O_RDONLY``, ``os.O_RDWR | os.O_CREAT``, ``os.O_WRONLY | os.O_APPEND``…
            (``O_TRUNC`` is not allowed: truncate the descriptor after this returns).
        mode: permissions of a file that is created.
        owners: uids besides root and the caller that may own an existing file.

    Returns:
        A close-on-exec descriptor in blocking mode.

    Raises:
        UnsafePath: the file is a symbolic link, a FIFO, a device, a directory, has
            more than one link, belongs to someone else, or a directory on the way
            is a link another user could have placed.
        OSError: it cannot be opened (missing, permissions, …).
    """
    assert not flags & os.O_TRUNC, "truncate after the checks"
    directory = open_directory(os.path.dirname(os.path.abspath(path)) or "/")
    try:
        try:
            fd = os.open(os.path.basename(path),
                         flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode,
                         dir_fd=directory)
        except OSError as problem:
            if problem.errno == errno.ELOOP:
                raise UnsafePath(path, _("is a symbolic link; mirrord opens only regular "
                                         "files here")) from None
            if problem.errno == errno.ENXIO:  # a FIFO without a reader, opened for writing
                raise UnsafePath(path, _("is a FIFO, not a regular file")) from None
            raise
    finally:
        os.close(directory)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePath(path, _("is {kind}, not a regular file").format(
                kind=_kind(info.st_mode)))
        if info.st_nlink > 1:
            raise UnsafePath(path, _("has {count} hard links; mirrord writes only a file "
                                     "with one name").format(count=info.st_nlink))
        if info.st_uid not in (0, os.geteuid(), *owners):
            raise UnsafePath(path, _("belongs to uid {uid}, not to root or mirrord's user")
                             .format(uid=info.st_uid))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: str, dir_fd: int | None = None) -> int | None:
    """Open *path* (relative to *dir_fd* if given) for reading, if it is a regular file
    reached without following a link in its last component; a FIFO cannot hang the open.
    For files mirrord only looks at, in a directory another user may change: a file it cannot
    use is as good as missing there (:func:`open_file` is the strict form, which says why).

    Returns:
        A close-on-exec descriptor in non-blocking mode (reads of a regular file do not
        block), or None: missing, a link, not a regular file, or not readable.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def read_limited(path: str, limit: int) -> bytes | None:
    """The content of the regular file *path*, opened safely; None if it does not exist.

    Raises:
        UnsafePath: as for :func:`open_file`, or the file is larger than *limit* bytes.
        OSError: it cannot be read.
    """
    try:
        fd = open_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with contextlib.closing(os.fdopen(fd, "rb")) as handle:
        size = os.fstat(fd).st_size
        if size > limit:
            raise UnsafePath(path, _("is {size} bytes, more than the {limit} allowed").format(
                size=size, limit=limit))
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnsafePath(path, _("is more than the {limit} bytes allowed").format(limit=limit))
    return data
