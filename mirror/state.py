# SPDX-License-Identifier: GPL-3.0-or-later
"""What each task did last, kept across restarts in one JSON file written atomically."""
from __future__ import annotations

import json
import logging
import signal
from dataclasses import asdict, dataclass, fields

from mirror.atomicfile import write_atomically

log = logging.getLogger(__name__)

SUCCESS = "success"
FAILED = "failed"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
KILLED = "killed"
FORMAT_VERSION = 1


@dataclass
class TaskState:
    """The persisted history of one task. Times are epoch seconds."""

    last_start: float | None = None
    last_end: float | None = None
    duration: float | None = None
    result: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    stage: int | None = None
    upstream: str | None = None
    upstream_index: int = 0
    last_success: float | None = None
    consecutive_failures: int = 0
    failures_total: int = 0  # failed or timed-out runs, ever
    size: int | None = None  # bytes, as a plugin last reported it

    @classmethod
    def from_dict(cls, data: dict) -> TaskState:
        """Build from JSON, ignoring unknown keys and values of the wrong type."""
        known = {field.name: field for field in fields(cls)}
        values = {}
        for key, value in data.items():
            if key in known and (value is None or isinstance(value, (int, float, str))):
                values[key] = value
        for name in ("last_start", "last_end", "duration", "last_success"):
            if isinstance(values.get(name), str):
                del values[name]
        for name in ("result", "signal", "upstream"):
            if values.get(name) is not None and not isinstance(values[name], str):
                del values[name]
        state = cls(**values)
        if not isinstance(state.upstream_index, int) or isinstance(state.upstream_index, bool):
            state.upstream_index = 0
        for name in ("consecutive_failures", "failures_total"):
            if not isinstance(getattr(state, name), int):
                setattr(state, name, 0)
        if state.size is not None and not isinstance(state.size, int):
            state.size = None
        return state


def exit_status(exit_code: int | None, signal_name: str | None) -> int | None:
    """How a run ended as one number: -N after signal N (as Python reports it), else the
    exit code; None when no process ran."""
    if signal_name is not None:
        return -int(signal.Signals[signal_name])
    return exit_code


class StateStore:
    """Loads and saves ``{task name: TaskState}`` at *path*."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> dict[str, TaskState]:
        """The saved states; an absent file gives {}, a damaged one {} with an error logged."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.error("cannot read the state file %s (%s); starting without history",
                      self.path, error)
            return {}
        tasks = data.get("tasks") if isinstance(data, dict) else None
        if not isinstance(tasks, dict):
            log.error("the state file %s has no 'tasks' object; starting without history",
                      self.path)
            return {}
        return {name: TaskState.from_dict(value) for name, value in tasks.items()
                if isinstance(value, dict)}

    def save(self, states: dict[str, TaskState]) -> None:
        """Write all states: a temporary file in the same directory, fsync, then os.replace.

        Raises:
            OSError: the directory is not writable.
        """
        document = {"version": FORMAT_VERSION,
                    "tasks": {name: asdict(state) for name, state in sorted(states.items())}}
        write_atomically(self.path, json.dumps(document, indent=1, sort_keys=True))
