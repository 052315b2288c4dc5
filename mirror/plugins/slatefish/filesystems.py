# SPDX-License-Identifier: GPL-3.0-or-later
"""Which filesystem holds each task's localdir, and how full each one is, for ``/metrics``.

A localdir belongs to the mirror's user, who may point it anywhere with a symbolic link: the
worst it can do here is make mirrord report the free space of another filesystem. Nothing is
opened or written. Each scrape costs one stat per localdir and one statvfs per filesystem;
the mount point of a device is looked up once and kept while the device stays the same.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    """One filesystem: where it is mounted, its free bytes (for unprivileged users, as
    ``df`` shows them) and its size."""

    mountpoint: str
    available_bytes: int
    size_bytes: int


def mount_point(path: str) -> str:
    """The mount point of the filesystem holding *path* (an existing directory), symbolic
    links resolved.

    Raises:
        OSError: a directory on the way cannot be examined.
    """
    current = os.path.realpath(path)
    while not os.path.ismount(current):
        current = os.path.dirname(current)
    return current


class FilesystemWatch:
    """Maps localdirs to filesystems; safe to call from several server threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mounts: dict[str, tuple[int, str]] = {}  # localdir -> (st_dev, mount point)

    def measure(self, localdirs: Iterable[tuple[str, str]]
                ) -> tuple[dict[str, str], list[Usage]]:
        """The filesystems of *localdirs*, pairs of (task, localdir).

        Returns:
            (each task's mount point, for the localdirs that exist; the usage of each
            filesystem, once per mount point, in mount point order). A localdir that does not
            exist (yet) or cannot be examined is left out.
        """
        task_mounts: dict[str, str] = {}
        examples: dict[str, str] = {}  # mount point -> a localdir on it
        for task, localdir in localdirs:
            try:
                device = os.stat(localdir).st_dev
                with self._lock:
                    known = self._mounts.get(localdir)
                if known is None or known[0] != device:
                    known = (device, mount_point(localdir))
                    with self._lock:
                        self._mounts[localdir] = known
            except OSError:
                continue
            task_mounts[task] = known[1]
            examples.setdefault(known[1], localdir)
        usages = []
        for mountpoint in sorted(examples):
            try:
                figures = os.statvfs(examples[mountpoint])
            except OSError:
                continue
            usages.append(Usage(mountpoint, figures.f_bavail * figures.f_frsize,
                                figures.f_blocks * figures.f_frsize))
        present = {usage.mountpoint for usage in usages}
        return {task: mount for task, mount in task_mounts.items() if mount in present}, usages
