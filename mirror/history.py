# SPDX-License-Identifier: GPL-3.0-or-later
"""What each task did last, kept across restarts in one JSON file written atomically."""
from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from mirror.atomicfile import write_atomically
from mirror.digest import sha256_hex
from mirror.i18n import _
from mirror.safeopen import UnsafePath, read_limited
from mirror.textenum import TextEnum

log = logging.getLogger(__name__)


class RunResult(TextEnum):
    """How a run ended, as the state file, the events and the clients say it."""

    SUCCESS = "success"
    FAILED = "failed"  # a stage failed, or could not start
    TIMEOUT = "timeout"  # its timeout passed and it was ended
    CANCELLED = "cancelled"  # an admin cancelled it
    KILLED = "killed"  # mirrord stopped during it
    # Adopted after mirrord died, it ended while no mirrord could read its exit status.
    UNATTENDED = "unattended"
    INTERRUPTED = "interrupted"  # its processes were gone when mirrord started again
    UNCHANGED = "unchanged"  # its checkfile was as at the last success: nothing to sync
    STALLED = "stalled"  # it moved no data for iotimeout and was ended
    VETOED = "vetoed"  # its exec_before hook exited non-zero: it did not sync

    @property
    def went_wrong(self) -> bool:
        """Whether the sync failed on its own, or may have (counted as a failure, retried,
        and a reason to fail over); a run that was cancelled, stopped, interrupted or
        vetoed says nothing about its upstream."""
        return self in (RunResult.FAILED, RunResult.TIMEOUT, RunResult.UNATTENDED,
                        RunResult.STALLED)

    @property
    def fresh(self) -> bool:
        """Whether the mirror is as fresh as its upstream after this run: it synced, or
        found nothing new (the last success, the feeds and the metrics advance)."""
        return self in (RunResult.SUCCESS, RunResult.UNCHANGED)

    @property
    def retried(self) -> bool:
        """Whether ``autoretry`` applies: the sync went wrong, or did not finish because
        mirrord was not running."""
        return self.went_wrong or self is RunResult.INTERRUPTED


# The names other modules (and plugins written for 0.9) import.
SUCCESS = RunResult.SUCCESS
FAILED = RunResult.FAILED
TIMEOUT = RunResult.TIMEOUT
CANCELLED = RunResult.CANCELLED
KILLED = RunResult.KILLED
UNATTENDED = RunResult.UNATTENDED
INTERRUPTED = RunResult.INTERRUPTED
UNCHANGED = RunResult.UNCHANGED
STALLED = RunResult.STALLED
VETOED = RunResult.VETOED
FORMAT_VERSION = 1
MAX_STATE_BYTES = 64 * 1024 * 1024  # about 100,000 tasks; /dev/zero must not fill memory


@dataclass
class TaskHistory:
    """The persisted history of one task. Times are epoch seconds."""

    last_start: float | None = None
    last_end: float | None = None
    duration: float | None = None
    result: RunResult | None = None
    exit_code: int | None = None
    signal: str | None = None
    stage: int | None = None
    upstream: str | None = None
    upstream_index: int = 0
    last_success: float | None = None
    consecutive_failures: int = 0
    failures_total: int = 0  # failed, timed-out or unattended runs, ever
    size: int | None = None  # bytes, as a plugin last reported it
    received_bytes: int | None = None  # by the last run's sync stages, as rsync --stats said

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskHistory:
        """Build from JSON, ignoring unknown keys and values of the wrong type."""
        known = {field.name: field for field in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in known and (value is None or isinstance(value, (int, float, str))):
                values[key] = value
        for name in ("last_start", "last_end", "duration", "last_success"):
            if isinstance(values.get(name), str):
                del values[name]
        for name in ("result", "signal", "upstream"):
            if values.get(name) is not None and not isinstance(values[name], str):
                del values[name]
        if values.get("result") is not None:
            try:
                values["result"] = RunResult(values["result"])
            except ValueError:  # a result this version does not know
                del values["result"]
        state = cls(**values)
        if not isinstance(state.upstream_index, int) or isinstance(state.upstream_index, bool):
            state.upstream_index = 0
        for name in ("consecutive_failures", "failures_total"):
            if not isinstance(getattr(state, name), int):
                setattr(state, name, 0)
        for name in ("size", "received_bytes"):
            value = getattr(state, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 0):
                setattr(state, name, None)
        return state


def exit_status(exit_code: int | None, signal_name: str | None) -> int | None:
    """How a run ended as one number: -N after signal N (as Python reports it), else the
    exit code; None when no process ran."""
    if signal_name is not None:
        return -int(signal.Signals[signal_name])
    return exit_code


class StateFileError(Exception):
    """The state file cannot be used safely; the message says why and what to do."""


@dataclass
class SavedState:
    """What the state file holds: each task's history, and the runs that were in progress
    when it was written (``{task name: record}``, read by :class:`mirror.runs.RunRecord`)."""

    histories: dict[str, TaskHistory]
    runs: dict[str, dict[str, Any]]
    digest: str | None = None  # SHA-256 of the file as read; None when there was none


class HistoryStore:
    """Loads and saves ``{task name: TaskHistory}`` (and the runs in progress) at *path*."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> dict[str, TaskHistory]:
        """The saved histories (see :meth:`load_all`)."""
        return self.load_all().histories

    def load_all(self) -> SavedState:
        """The saved histories and runs in progress; an absent file gives neither.

        The file is opened without following links, only as a regular file, and read
        only up to MAX_STATE_BYTES. A file that is not valid JSON is renamed aside
        (``state.json.damaged-TIMESTAMP``, logged), so that the next save does not
        destroy what an admin may want to recover, and {} is returned.

        Raises:
            StateFileError: the path is a link, a FIFO, a device, too large, or unreadable.
        """
        try:
            data = read_limited(self.path, MAX_STATE_BYTES)
        except OSError as problem:
            raise StateFileError(_("cannot use the state file {path}: {reason}").format(
                path=self.path, reason=problem if isinstance(problem, UnsafePath)
                else problem.strerror or problem)) from None
        if data is None:
            return SavedState({}, {})
        digest = sha256_hex(data)
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as problem:
            self._set_aside(f"not JSON: {problem}")
            return SavedState({}, {})
        tasks = document.get("tasks") if isinstance(document, dict) else None
        if not isinstance(tasks, dict):
            self._set_aside("no 'tasks' object")
            return SavedState({}, {})
        runs = document.get("runs")
        return SavedState(
            {name: TaskHistory.from_dict(value) for name, value in tasks.items()
             if isinstance(name, str) and isinstance(value, dict)},
            {name: value for name, value in runs.items()
             if isinstance(name, str) and isinstance(value, dict)}
            if isinstance(runs, dict) else {}, digest)

    def _set_aside(self, reason: str) -> None:
        aside = f"{self.path}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
        try:
            os.replace(self.path, aside)
        except OSError as problem:
            log.error("the state file %s is damaged (%s) and cannot be moved aside (%s); "
                      "starting without history", self.path, reason, problem)
            return
        log.error("the state file %s is damaged (%s); kept as %s, starting without history",
                  self.path, reason, aside)

    def save(self, states: dict[str, TaskHistory],
             runs: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """Write all states, and the records of the runs in progress: a temporary file in the
        same directory, fsync, then os.replace.

        Returns:
            The SHA-256 of what was written (what :meth:`load_all` gives as ``digest``).

        Raises:
            OSError: the directory is not writable.
        """
        document = {"version": FORMAT_VERSION,
                    # vars(), not asdict(): every field is a plain value, nothing to deep-copy
                    "tasks": {name: vars(state) for name, state in sorted(states.items())},
                    "runs": dict(runs or {})}
        text = json.dumps(document, separators=(",", ":"), sort_keys=True)
        write_atomically(self.path, text)
        return sha256_hex(text.encode("utf-8"))
