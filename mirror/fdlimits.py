# SPDX-License-Identifier: GPL-3.0-or-later
"""File descriptors: as many as the system allows, and a reserve that a flood cannot take.

mirrord needs a descriptor for every sync's log, for the state file it rewrites
after every run, and for each control connection. :func:`raise_nofile_limit`
lifts the soft ``RLIMIT_NOFILE`` to the hard limit at start;
:class:`DescriptorReserve` tells the control server when accepting one more
client would leave fewer than a reserve of descriptors for the syncs and the
state file.
"""
from __future__ import annotations

import logging
import os
import resource
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

DEFAULT_RESERVE = 64  # a log and a pipe or two per starting sync, the state file, plugins
FD_DIRECTORY = "/proc/self/fd"
NR_OPEN = "/proc/sys/fs/nr_open"
NR_OPEN_FALLBACK = 1024 * 1024  # Linux's default fs.nr_open


def _nr_open() -> int:
    """The kernel's ceiling for RLIMIT_NOFILE (fs.nr_open), or Linux's default when unknown."""
    try:
        with open(NR_OPEN, encoding="ascii") as source:
            return int(source.read().strip())
    except (OSError, ValueError):
        return NR_OPEN_FALLBACK


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft limit on open descriptors to the hard limit (to ``fs.nr_open`` when the
    hard limit is unlimited). Meant for the start of the daemon; never fails it.

    Returns:
        The (soft, hard) limits now in force: the new ones, or the old ones when they could
        not be raised (the reason is logged as a warning); ``resource.RLIM_INFINITY`` for
        both in the unlikely case that the limits cannot even be read.
    """
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError) as problem:
        log.warning("cannot read the limit on open files: %s", problem)
        return resource.RLIM_INFINITY, resource.RLIM_INFINITY
    target = _nr_open() if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as problem:
        log.warning("cannot raise the limit on open files from %d to %d: %s; keeping %d",
                    soft, target, problem, soft)
        return soft, hard
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def soft_nofile_limit() -> int:
    """The soft limit on open descriptors now (one system call); ``sys.maxsize`` when
    unlimited."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return sys.maxsize if soft == resource.RLIM_INFINITY else soft


def open_descriptor_count() -> int | None:
    """How many descriptors this process has open, or None where /proc cannot say.

    On Linux 6.2 and later this is one ``stat`` of /proc/self/fd, whose size is the count
    (the kernel weighs a bitmap; no listing). Older kernels report size 0, and the directory
    is listed instead: O(open descriptors).
    """
    try:
        size = os.stat(FD_DIRECTORY).st_size
        if size > 0:
            return size
        # The listing includes the descriptor that reads the directory; it is closed after.
        return len(os.listdir(FD_DIRECTORY)) - 1
    except OSError:
        return None


class DescriptorReserve:
    """Decides whether one more descriptor may be kept open while *reserve* stay free.

    Args:
        reserve: how many descriptors below the soft limit must stay free.
        soft_limit: returns the soft limit (injectable for tests).
        count_open: returns the number of open descriptors, or None if unknown
            (injectable for tests).
    """

    def __init__(self, reserve: int = DEFAULT_RESERVE,
                 soft_limit: Callable[[], int] = soft_nofile_limit,
                 count_open: Callable[[], int | None] = open_descriptor_count) -> None:
        self.reserve = reserve
        self.soft_limit = soft_limit
        self.count_open = count_open

    def allows(self, newest: int) -> bool:
        """Whether descriptor *newest*, just opened, may stay open.

        Args:
            newest: the number of the descriptor just opened (``sock.fileno()``).

        Returns:
            True when at least ``reserve`` descriptors stay free below the soft limit with
            *newest* open. First in O(1): the kernel hands out the lowest free number, so
            every descriptor below *newest* is open, and a high number alone can say no.
            Otherwise the open descriptors are counted (:func:`open_descriptor_count`); where
            they cannot be, that bound is all there is.
        """
        soft = self.soft_limit()
        if soft - (newest + 1) < self.reserve:
            return False
        count = self.count_open()
        return count is None or soft - count >= self.reserve
