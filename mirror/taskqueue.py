# SPDX-License-Identifier: GPL-3.0-or-later
"""The queue of things due: a heap of (due, priority, seq, kind, name) with lazy cancellation.

At most one entry per (kind, name) is live; pushing a second replaces the first.
Push and pop are O(log n), cancel is O(1) (the dead entry is skipped when it
surfaces, and the heap is rebuilt when dead entries outnumber live ones).
"""
from __future__ import annotations

import heapq
import itertools
from typing import NamedTuple

from mirror.textenum import TextEnum


class QueueKind(TextEnum):
    """What a queue entry is due for."""

    RUN = "run"  # a task's next scheduled (or delayed) start
    RETRY = "retry"  # a failed run's retry
    TIMEOUT = "timeout"  # a running task's time limit
    SYSTEM = "system"  # an internal job, such as cleaning old logs


# The names other modules import.
RUN = QueueKind.RUN
RETRY = QueueKind.RETRY
TIMEOUT = QueueKind.TIMEOUT
SYSTEM = QueueKind.SYSTEM
KINDS = tuple(QueueKind)
_KIND_BY_VALUE: dict[str, QueueKind] = {kind.value: kind for kind in QueueKind}


class QueueEntry(NamedTuple):
    """One queued item; tuples order by due time, then priority (1 first), then insertion."""

    due: float
    priority: int
    seq: int
    kind: QueueKind
    name: str


class TaskQueue:
    """A priority queue keyed by (kind, name)."""

    def __init__(self) -> None:
        self._heap: list[QueueEntry] = []
        self._live: dict[tuple[QueueKind, str], QueueEntry] = {}
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def push(self, due: float, priority: int, kind: QueueKind | str, name: str) -> QueueEntry:
        """Queue *kind* for *name* at *due*, replacing any live entry of the same kind and name.

        Raises:
            ValueError: *kind* is not a QueueKind (nor one's value).
        """
        member = _KIND_BY_VALUE.get(kind)  # a dict look-up: QueueKind(kind) costs 10 times more
        if member is None:
            raise ValueError(f"unknown queue entry kind {kind!r}")
        entry = QueueEntry(due, priority, next(self._counter), member, name)
        self._live[(member, name)] = entry
        heapq.heappush(self._heap, entry)
        self._compact_if_sparse()
        return entry

    def get(self, kind: QueueKind, name: str) -> QueueEntry | None:
        """The live entry of *kind* for *name*, if any."""
        return self._live.get((kind, name))

    def cancel(self, kind: QueueKind, name: str) -> bool:
        """Drop the live entry of *kind* for *name*; tell whether there was one."""
        return self._live.pop((kind, name), None) is not None

    def cancel_all(self, name: str) -> None:
        """Drop every live entry for *name*."""
        for kind in KINDS:
            self._live.pop((kind, name), None)

    def peek(self) -> QueueEntry | None:
        """The earliest live entry, without removing it."""
        self._drop_dead_head()
        return self._heap[0] if self._heap else None

    def pop(self) -> QueueEntry | None:
        """Remove and return the earliest live entry."""
        self._drop_dead_head()
        if not self._heap:
            return None
        entry = heapq.heappop(self._heap)
        del self._live[(entry.kind, entry.name)]
        return entry

    def pop_due(self, now: float) -> list[QueueEntry]:
        """Remove and return every live entry due at or before *now*, in queue order."""
        due: list[QueueEntry] = []
        while True:
            head = self.peek()
            if head is None or head.due > now:
                return due
            due.append(self.pop())  # type: ignore[arg-type]

    def entries(self) -> list[QueueEntry]:
        """All live entries in queue order (a copy)."""
        return sorted(self._live.values())

    def _is_live(self, entry: QueueEntry) -> bool:
        return self._live.get((entry.kind, entry.name)) is entry

    def _drop_dead_head(self) -> None:
        while self._heap and not self._is_live(self._heap[0]):
            heapq.heappop(self._heap)

    def _compact_if_sparse(self) -> None:
        if len(self._heap) > 2 * len(self._live) + 64:
            self._heap = [entry for entry in self._heap if self._is_live(entry)]
            heapq.heapify(self._heap)
