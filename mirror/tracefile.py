# SPDX-License-Identifier: GPL-3.0-or-later
"""Debian mirror trace files (``trace = 1``): ``LOCALDIR/project/trace/HOSTNAME`` and the
``_traces`` list beside it, in the format of Debian's ftpsync.

The format (ftpsync's README, "Mirror trace files"): the first line is ``date -u`` in the
POSIX locale (``Thu Dec  3 06:01:14 UTC 2026``); every other line is ``Field: value``, in the
order ftpsync writes them. ``Archive serial`` is read from the upstream's
``project/trace/master`` as the sync left it in the localdir. ``_traces`` names every trace
file of the directory (not those starting with ``_``), as ftpsync's does.

The localdir belongs to the mirror's user, who may plant symbolic links there: every
directory is opened with ``O_NOFOLLOW`` below the localdir, the master trace is read only as
a regular file, and each file is written under a new name then renamed within the opened
directory, so that a link can only ever be replaced, never followed.
"""
from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from mirror.atomicfile import write_atomically
from mirror.safeopen import open_directory, open_regular

TRACE_DIRECTORY = "project/trace"
TRACE_PARTS = tuple(TRACE_DIRECTORY.split("/"))
MASTER = "master"
TRACES_LIST = "_traces"
# What _traces lists: names of trace files (host names), never one that could break its lines.
_TRACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_MASTER_BYTES = 64 * 1024
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SERIAL = re.compile(rb"^Archive serial:[ \t]*(\S+)[ \t]*$", re.MULTILINE | re.IGNORECASE)
# Plain numbers only (with --stats' thousands separators); --human-readable's 1.23M is not.
_BYTES_RECEIVED = re.compile(rb"Total bytes received: ([0-9][0-9,]*)(?![0-9.,A-Za-z])")
_PRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class TraceFacts:
    """What a trace file says about one successful sync."""

    host: str  # the file's name: the mirror's name (tracehost)
    running_on: str  # "Running on host": the host's own name
    version: str  # mirrord's
    started: float
    ended: float
    upstream: str | None
    maintainer: str
    stage_seconds: Sequence[float]  # of each sync stage
    bytes_received: int | None  # None: the logs did not say (no --stats)


def date_line(when: float) -> str:
    """``date -u`` in the POSIX locale: ``Thu Dec  3 06:01:14 UTC 2026``."""
    moment = time.gmtime(when)
    return (f"{_DAYS[moment.tm_wday]} {_MONTHS[moment.tm_mon - 1]} {moment.tm_mday:2d} "
            f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} UTC "
            f"{moment.tm_year}")


def rfc822(when: float) -> str:
    """``Thu, 03 Dec 2026 06:01:14 +0000``."""
    from email.utils import format_datetime  # only when a trace is written: not at start

    return format_datetime(datetime.fromtimestamp(int(when), timezone.utc))


def upstream_host(upstream: str | None) -> str:
    """The host an upstream names (``rsync://user@host:873/debian/`` → ``host``; a local
    path gives ``localhost``)."""
    if not upstream:
        return "unknown"
    if upstream.startswith("/"):
        return "localhost"
    text = upstream.removeprefix("rsync://").rpartition("@")[2]
    if text.startswith("["):
        return text[1:].partition("]")[0]
    return text.split("::", 1)[0].split("/", 1)[0].split(":", 1)[0]


def _clean(text: str) -> str:
    """A value on one line of printable ASCII (an upstream's value cannot add fields)."""
    return _PRINTABLE.sub("?", text)


def trace_text(facts: TraceFacts, serial: str) -> str:
    """The trace file for *facts*, with the archive serial *serial*."""
    lines = [date_line(facts.ended),
             f"Date: {rfc822(facts.ended)}",
             f"Date-Started: {rfc822(facts.started)}",
             f"Archive serial: {_clean(serial)}",
             f"Used mirrord version: {facts.version}",
             f"Creator: mirrord {facts.version}",
             f"Running on host: {facts.running_on}"]
    if facts.maintainer:
        lines.append(f"Maintainer: {_clean(facts.maintainer)}")
    lines.append(f"Upstream-mirror: {_clean(upstream_host(facts.upstream))}")
    if facts.bytes_received:
        lines.append(f"Total bytes received in rsync: {facts.bytes_received}")
    seconds = [round(value) for value in facts.stage_seconds]
    if len(seconds) > 1:
        lines.append(f"Total time spent in stage1 rsync: {seconds[0]}")
        lines.append(f"Total time spent in stage2 rsync: {sum(seconds[1:])}")
    total = sum(seconds)
    lines.append(f"Total time spent in rsync: {total}")
    if facts.bytes_received and total:
        lines.append(f"Average rate: {facts.bytes_received // total} B/s")
    return "\n".join(lines) + "\n"


def bytes_received(log_tail: bytes) -> int | None:
    """The last ``Total bytes received:`` of rsync's ``--stats`` in *log_tail*, or None."""
    found = _BYTES_RECEIVED.findall(log_tail)
    if not found:
        return None
    return int(found[-1].replace(b",", b""))


def _open_below(directory: int, parts: Sequence[str], create: bool) -> int:
    """The directory *parts* below the open *directory*, never through a symbolic link."""
    fd = os.dup(directory)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            following = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = following
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_master(directory: int) -> bytes:
    fd = open_regular(MASTER, dir_fd=directory)
    if fd is None:
        return b""
    with os.fdopen(fd, "rb") as handle:
        return handle.read(MAX_MASTER_BYTES)


def archive_serial(master: bytes) -> str:
    """The ``Archive serial`` of a master trace, or ``unknown``."""
    found = _SERIAL.search(master)
    return found.group(1).decode("ascii", "replace") if found else "unknown"


def _trace_names(directory: int) -> list[str]:
    names = []
    for name in os.listdir(directory):
        if not _TRACE_NAME.fullmatch(name):  # also leaves out _traces and temporary files
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode):
                names.append(name)
    return sorted(names)


def write_trace(localdir: str, facts: TraceFacts) -> str:
    """Write ``LOCALDIR/project/trace/HOST`` and ``_traces`` for a successful sync.

    Returns:
        The trace file's path.

    Raises:
        OSError: the localdir, or a directory below it, cannot be used (a symbolic link
            where project or trace should be, permissions, a full disk).
    """
    top = open_directory(localdir)
    try:
        trace_dir = _open_below(top, TRACE_PARTS, create=True)
    finally:
        os.close(top)
    try:
        serial = archive_serial(_read_master(trace_dir))
        write_atomically(facts.host, trace_text(facts, serial), dir_fd=trace_dir)
        write_atomically(TRACES_LIST, "".join(f"{name}\n" for name in _trace_names(trace_dir)),
                         dir_fd=trace_dir)
    finally:
        os.close(trace_dir)
    return os.path.join(localdir, *TRACE_PARTS, facts.host)
