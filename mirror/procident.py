# SPDX-License-Identifier: GPL-3.0-or-later
"""Knowing a process again after mirrord restarted: its start time, its boot, its run id.

A pid alone names a process only while it lives: after an exit the kernel hands the number
to the next process. A run's process is therefore recorded with the boot it ran in
(``/proc/sys/kernel/random/boot_id``) and its start time (field 22 of ``/proc/PID/stat``,
clock ticks after boot), and it carries the run's random id in its environment
(``MIRROR_RUN_ID``). A process is taken for the run's only when all three match: a pid
reused since, or a record forged to point at another process, is never signalled.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

RUN_ID_VARIABLE = "MIRROR_RUN_ID"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
MAX_ENVIRON_BYTES = 1 << 20  # a process's environment is read only this far


@dataclass(frozen=True)
class ProcessInfo:
    """What /proc says about one process: its state letter (``Z`` for a zombie), its
    parent, its start time in clock ticks after boot, and the CPU time it used so far
    (user and system, in clock ticks)."""

    pid: int
    state: str
    parent: int
    start_ticks: int
    cpu_ticks: int


@functools.lru_cache(maxsize=1)
def boot_id() -> str:
    """This boot's id (empty where /proc does not say); read once, as it cannot change while
    this process lives."""
    try:
        with open(BOOT_ID_PATH, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def process_info(pid: int) -> ProcessInfo | None:
    """*pid*'s state, parent, start time and CPU time; None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold ")" or spaces.
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return ProcessInfo(pid=pid, state=fields[0], parent=int(fields[1]),
                           start_ticks=int(fields[19]),
                           cpu_ticks=int(fields[11]) + int(fields[12]))  # utime, stime
    except (IndexError, ValueError):
        return None


def run_id_of(pid: int) -> str | None:
    """The ``MIRROR_RUN_ID`` in *pid*'s environment as it was started; None when it has
    none or its environment cannot be read (another user's process, a zombie)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            data = handle.read(MAX_ENVIRON_BYTES)
    except OSError:
        return None
    prefix = RUN_ID_VARIABLE.encode() + b"="
    for entry in data.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode("ascii", "replace")
    return None


@dataclass(frozen=True)
class ProcessIdentity:
    """A run's process as recorded when it started."""

    pid: int
    start_ticks: int
    boot: str
    run_id: str

    @classmethod
    def of(cls, pid: int, run_id: str) -> ProcessIdentity | None:
        """The identity of *pid*, a process started with *run_id*; None when it is gone."""
        info = process_info(pid)
        if info is None:
            return None
        return cls(pid=pid, start_ticks=info.start_ticks, boot=boot_id(), run_id=run_id)

    def matches(self) -> bool:
        """Whether the process recorded is still alive (not a zombie) and is this one: the
        same boot, the same start time, the run's id in its environment, and this process's
        user (mirrord's syncs run as mirrord's user; a process of a less privileged user that
        copied a run's id into its environment is not taken for a sync)."""
        info = process_info(self.pid)
        if info is None or info.state == "Z":
            return False
        return (info.start_ticks == self.start_ticks and bool(self.boot)
                and self.boot == boot_id() and owned_by(self.pid, os.geteuid())
                and run_id_of(self.pid) == self.run_id)


def owned_by(pid: int, uid: int) -> bool:
    """Whether *pid*'s real, effective, saved and file-system user ids are all *uid* (from
    the ``Uid:`` line of /proc/PID/status: the owner of /proc/PID itself may read as root for
    a process that made itself not dumpable)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Uid:"):
                    return all(int(field) == uid for field in line.split()[1:])
    except (OSError, ValueError):
        return False
    return False
