# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``checkfile`` copies: what a task's upstream published at its last successful sync.

A run of a task with ``checkfile`` first fetches that one file from its upstream into
``CHECKDIR/NAME.fetched``. When it is byte for byte ``CHECKDIR/NAME.saved`` (the copy of the
last success) and the task still syncs the same way (``NAME.key``: its localdir and its kind's
options), nothing changed upstream and the run ends ``unchanged``; otherwise the full sync
runs. The saved copy is dropped as soon as a sync stage starts (a sync that fails half-way
leaves a tree that matches no upstream copy), and the fetched copy becomes the saved one only
when the run succeeds.

CHECKDIR is ``checkfiles`` beside the state file: mirrord's own, mode 0700, and refused when
it, or the directory it is in, can be changed by another user (rsync writes into it as root).
"""
from __future__ import annotations

import contextlib
import enum
import os
import stat
from typing import TYPE_CHECKING

from mirror.atomicfile import write_atomically
from mirror.digest import sha256_hex
from mirror.i18n import _
from mirror.safeopen import UnsafePath, open_regular

if TYPE_CHECKING:
    from mirror.task import TaskSpec

CHECKDIR_NAME = "checkfiles"
FETCHED_SUFFIX = ".fetched"
SAVED_SUFFIX = ".saved"
KEY_SUFFIX = ".key"
MAX_CHECK_BYTES = 1024 * 1024  # rsync's --max-size in the fetch


def checkdir_for(statefile: str) -> str:
    """The check directory that goes with the state file *statefile*."""
    return os.path.join(os.path.dirname(os.path.abspath(statefile)), CHECKDIR_NAME)


def fetched_path(checkdir: str, name: str) -> str:
    """Where a run of task *name* fetches its checkfile."""
    return os.path.join(checkdir, name + FETCHED_SUFFIX)


def saved_path(checkdir: str, name: str) -> str:
    """The checkfile as it was at task *name*'s last successful sync."""
    return os.path.join(checkdir, name + SAVED_SUFFIX)


def key_path(checkdir: str, name: str) -> str:
    """What the saved copy was synced with (:func:`sync_key`)."""
    return os.path.join(checkdir, name + KEY_SUFFIX)


def sync_key(task: TaskSpec) -> bytes:
    """How *task* syncs, as a digest: its localdir and its kind's options (not the upstream,
    which failover changes). A reload that changes them makes the saved copy stale."""
    return sha256_hex(repr((task.localdir, task.options)).encode("utf-8",
                                                                 "surrogatepass")).encode()


def _private(info: os.stat_result) -> bool:
    return info.st_uid == os.geteuid() and not info.st_mode & 0o077


def prepare_checkdir(checkdir: str) -> None:
    """Create *checkdir* (mode 0700) if missing, and make sure only mirrord's user can
    change it or the directory it is in.

    Raises:
        UnsafePath: it is a symbolic link or not a directory, belongs to another user, is open
            to others, or the directory it is in can be changed by a user other than
            mirrord's (or root).
        OSError: it cannot be created.
    """
    parent = os.path.dirname(os.path.abspath(checkdir))
    above = os.lstat(parent)
    if (not stat.S_ISDIR(above.st_mode) or above.st_uid not in (0, os.geteuid())
            or above.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
        raise UnsafePath(parent, _("can be changed by a user other than mirrord's; checkfile "
                                   "copies are kept only in a directory that cannot"))
    with contextlib.suppress(FileExistsError):
        os.mkdir(checkdir, 0o700)
    info = os.lstat(checkdir)
    if not stat.S_ISDIR(info.st_mode) or not _private(info):
        raise UnsafePath(checkdir, _("is not a directory that only mirrord's user can use "
                                     "(mode 0700); remove it, and mirrord creates it again"))


class Fetched(enum.Enum):
    """What a checkfile fetch left, against the copy of the last success."""

    MISSING = "missing"  # no regular file of at most MAX_CHECK_BYTES came
    UNCHANGED = "unchanged"  # byte for byte the saved copy, saved with the same sync key
    CHANGED = "changed"  # anything else: no saved copy, another key, other bytes


def _read(path: str) -> bytes | None:
    """The regular file *path*, if it exists and is at most MAX_CHECK_BYTES."""
    fd = open_regular(path)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as handle:
        if os.fstat(fd).st_size > MAX_CHECK_BYTES:
            return None
        return handle.read(MAX_CHECK_BYTES + 1)


def compare_fetched(checkdir: str, name: str, key: bytes) -> Fetched:
    """What the last fetch of *name*'s checkfile left, against the copy of the last success
    saved with *key*."""
    new = _read(fetched_path(checkdir, name))
    if new is None:
        return Fetched.MISSING
    if new == _read(saved_path(checkdir, name)) and _read(key_path(checkdir, name)) == key:
        return Fetched.UNCHANGED
    return Fetched.CHANGED


def discard_fetched(checkdir: str, name: str) -> None:
    """Remove a fetched copy (before a fetch, and after a run that did not succeed)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(fetched_path(checkdir, name))


def forget_saved(checkdir: str, name: str) -> None:
    """Drop the copy of the last success (a sync is changing the tree).

    Raises:
        OSError: it cannot be removed.
    """
    for path in (saved_path(checkdir, name), key_path(checkdir, name)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def keep_fetched(checkdir: str, name: str, key: bytes) -> bool:
    """After a successful sync: the fetched copy becomes the saved one, with *key*.

    Returns:
        Whether there was one to keep.

    Raises:
        OSError: it cannot be written or renamed.
    """
    if not os.path.lexists(fetched_path(checkdir, name)):
        return False
    write_atomically(key_path(checkdir, name), key.decode("ascii"), 0o600)
    os.replace(fetched_path(checkdir, name), saved_path(checkdir, name))
    return True
