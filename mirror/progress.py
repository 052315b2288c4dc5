# SPDX-License-Identifier: GPL-3.0-or-later
"""``iotimeout``: noticing a stage that has stopped moving data.

A stage makes progress when the processes of its tree (the stage's process and its
descendants, found through ``/proc/PID/task/TID/children``) read or write more bytes:
``rchar + wchar`` of ``/proc/PID/io``, which counts every read and write, to the network as
much as to the disk. rsync's keep-alives are a few bytes every ``--timeout/2``, so growth of at
most PROGRESS_BYTES since the last progress does not count as progress: a transfer that stalls
in the middle of a file, where rsync's own ``--timeout`` is fooled by its keep-alives, still
stalls here. Work without I/O counts too: more than PROGRESS_TICKS of CPU time (``utime +
stime`` of ``/proc/PID/stat``), as when rsync walks an unchanged tree of a million files with
``lstat`` alone; a process blocked on a silent socket uses none.

Why not the localdir's or the log's growth: walking a million-file localdir costs more than
the sync it watches, a file being received grows a temporary name rsync picks, and the log
says nothing in the middle of a large file. ``/proc/PID/io`` costs one small read per process.

The check runs only while a stage with ``iotimeout`` runs, every quarter of the shortest
``iotimeout`` (at least MIN_CHECK_SECONDS, at most MAX_CHECK_SECONDS), so an idle mirrord
never wakes for it.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mirror.procident import process_info

PROGRESS_BYTES = 4096
PROGRESS_TICKS = 100  # clock ticks of CPU time: a second at the usual 100 Hz
MIN_CHECK_SECONDS = 1.0
MAX_CHECK_SECONDS = 60.0
MAX_TREE = 4096  # processes looked at per stage: a fork bomb is not walked for ever

Work = tuple[int, int]  # (bytes read and written, clock ticks of CPU time)
Sampler = Callable[[int], Mapping[int, Work]]


def tree_io(pid: int) -> dict[int, Work]:
    """What *pid* and each of its descendants that can be read have done so far: pid →
    (``rchar + wchar``, ``utime + stime``); empty when *pid* is gone."""
    counts: dict[int, Work] = {}
    todo = [pid]
    while todo and len(counts) < MAX_TREE:
        current = todo.pop()
        if current in counts:
            continue
        total = _io_bytes(current)
        if total is None:
            continue
        info = process_info(current)
        counts[current] = (total, info.cpu_ticks if info is not None else 0)
        todo.extend(_children(current))
    return counts


def _io_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/io", "rb") as handle:
            text = handle.read(4096)
    except OSError:
        return None
    total = 0
    for line in text.split(b"\n"):
        key, _colon, value = line.partition(b":")
        if key in (b"rchar", b"wchar"):
            try:
                total += int(value)
            except ValueError:
                return None
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children", "rb") as handle:
                found.extend(int(word) for word in handle.read(65536).split())
        except (OSError, ValueError):
            continue
    return found


@dataclass
class _Watched:
    pid: int
    iotimeout: float
    progressed: float  # monotonic time of the last progress
    marks: dict[int, Work] = field(default_factory=dict)  # per process, at that time


class ProgressWatch:
    """The running stages with an ``iotimeout``, and when each last moved data.

    Args:
        sample: reads a stage's tree (:func:`tree_io`; a seam for tests).
    """

    def __init__(self, sample: Sampler = tree_io) -> None:
        self.sample = sample
        self._watched: dict[str, _Watched] = {}
        self._next_check: float | None = None

    def watch(self, name: str, pid: int, iotimeout: float, now: float) -> None:
        """Watch task *name*'s stage *pid* from *now* (monotonic), replacing its last one."""
        self._watched[name] = _Watched(pid, iotimeout, now, dict(self.sample(pid)))
        self._schedule(now)

    def forget(self, name: str) -> None:
        """Stop watching *name* (its stage ended)."""
        if self._watched.pop(name, None) is not None and not self._watched:
            self._next_check = None

    def next_check(self) -> float | None:
        """When :meth:`check` is due (monotonic), or None when nothing is watched."""
        return self._next_check

    def check(self, now: float) -> list[tuple[str, float]]:
        """Look at every watched stage, if due at *now*.

        Returns:
            The stalled ones, as (task name, seconds without progress); they are no longer
            watched.
        """
        if self._next_check is None or now < self._next_check:
            return []
        stalled = []
        for name, watched in list(self._watched.items()):
            counts = self.sample(watched.pid)
            if _progressed(watched.marks, counts):
                watched.progressed, watched.marks = now, dict(counts)
            elif now - watched.progressed >= watched.iotimeout:
                stalled.append((name, now - watched.progressed))
                del self._watched[name]
        self._next_check = None
        self._schedule(now)
        return stalled

    def _schedule(self, now: float) -> None:
        if not self._watched:
            self._next_check = None
            return
        shortest = min(watched.iotimeout for watched in self._watched.values())
        due = now + min(max(shortest / 4, MIN_CHECK_SECONDS), MAX_CHECK_SECONDS)
        self._next_check = due if self._next_check is None else min(self._next_check, due)


def _progressed(marks: Mapping[int, Work], counts: Mapping[int, Work]) -> bool:
    """Whether the tree moved more than PROGRESS_BYTES, or used more than PROGRESS_TICKS of
    CPU, since *marks*: a new process counts with all it did, one that has ended with
    nothing."""
    moved = ticks = 0
    for pid, (total, cpu) in counts.items():
        before = marks.get(pid, (0, 0))
        moved += total - before[0]
        ticks += cpu - before[1]
    return moved > PROGRESS_BYTES or ticks > PROGRESS_TICKS
