# SPDX-License-Identifier: GPL-3.0-or-later
"""TaskStatus: the status file in mirror 0.8.4's format, and a tunasync-compatible jobs file.

Both are rewritten, atomically, from a fresh snapshot whenever a task is
queued, starts, finishes or gets a new size, and after a reload; at most once
a second (MIN_INTERVAL), so that a busy site (1,000 runs ending in the same
minute) costs the loop one snapshot a second, not one per event.

The files are written a task at a time: the text is exactly what
``json.dumps(document, indent=2, ensure_ascii=False) + "\\n"`` gives, but neither
the whole document nor its whole text is ever built. Built whole, the two files of
1,000 tasks left the daemon's resident memory about 2.4 MB bigger for good.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace

from mirror.atomicfile import write_atomically
from mirror.plugin import (
    UNANSWERED,
    MirrorEvent,
    PluginBase,
    Setting,
    Snapshot,
    parse_absolute_path,
)
from mirror.plugins.feeds import jobs_document, status_document

log = logging.getLogger(__name__)

STATUS_FILE_NAME = "task_status.json"
MIN_INTERVAL = 1.0  # seconds between two rewrites
TRIGGERS = ("MirrorStartEvent", "TaskEnqueueEvent", "TaskStartEvent", "RunFinishedEvent",
            "TaskSizeEvent", "ReloadEvent", "StopEvent")


def default_status_name(state_file: str) -> str:
    """``task_status.json`` beside ``state.json``; beside any other state file, a name taken
    from it (``state-conf-1a2b3c4d.json`` gives ``task_status-conf-1a2b3c4d.json``), so that
    daemons sharing a state directory never share a status file."""
    stem = os.path.splitext(os.path.basename(state_file))[0]
    suffix = stem[len("state"):] if stem.startswith("state") else f"-{stem}"
    return f"task_status{suffix}.json" if stem else STATUS_FILE_NAME


def parse_optional_path(text: str) -> str:
    """An absolute path, or nothing (the default)."""
    return parse_absolute_path(text) if text.strip() else ""


def _deeper(text: str) -> str:
    """Indented JSON *text* one level (2 spaces) deeper. JSON text has newlines only between
    its tokens (a string escapes its own), so each one starts a line to indent."""
    return text.replace("\n", "\n  ")


def object_pieces(members: Iterable[tuple[str, object]]) -> Iterator[str]:
    """The JSON object of *members* (key and value; each key once) with a newline after it,
    as ``json.dumps(dict(members), indent=2, ensure_ascii=False) + "\\n"`` writes it,
    yielded a member at a time as *members* yields them.

    Raises:
        TypeError: a value JSON cannot represent.
        ValueError: a value that contains itself.
    """
    encoder = json.JSONEncoder(indent=2, ensure_ascii=False)
    opener = "{\n  "
    for key, value in members:
        yield f"{opener}{encoder.encode(key)}: {_deeper(encoder.encode(value))}"
        opener = ",\n  "
    yield "{}\n" if opener == "{\n  " else "\n}\n"


def array_pieces(values: Iterable[object]) -> Iterator[str]:
    """The JSON array of *values* with a newline after it, as
    ``json.dumps(list(values), indent=2, ensure_ascii=False) + "\\n"`` writes it, yielded a
    value at a time as *values* yields them.

    Raises:
        TypeError: a value JSON cannot represent.
        ValueError: a value that contains itself.
    """
    encoder = json.JSONEncoder(indent=2, ensure_ascii=False)
    opener = "[\n  "
    for value in values:
        yield opener + _deeper(encoder.encode(value))
        opener = ",\n  "
    yield "[]\n" if opener == "[\n  " else "\n]\n"


def status_members(snapshot: Snapshot) -> Iterator[tuple[str, object]]:
    """:func:`status_document`'s members (task name, entry), made one task at a time."""
    for task in snapshot.tasks:
        yield from status_document(replace(snapshot, tasks=(task,))).items()


def jobs_values(snapshot: Snapshot) -> Iterator[object]:
    """:func:`jobs_document`'s values (one object per task), made one task at a time."""
    for task in snapshot.tasks:
        yield from jobs_document(replace(snapshot, tasks=(task,)))


class TaskStatus(PluginBase):
    """Writes ``status_file`` (always) and ``jobs_file`` (when set)."""

    SETTINGS = (
        Setting("status_file", parse_optional_path, "",
                "0.8.4's status JSON; default task_status.json beside the state file "
                "(task_status-NAME-HASH.json beside state-NAME-HASH.json)"),
        Setting("jobs_file", parse_optional_path, "",
                "tunasync's /jobs JSON; not written when empty"),
    )

    def enable(self) -> None:
        """Find the files' places and subscribe.

        Raises:
            OSError: a directory for them cannot be created.
        """
        self.status_file = self.settings["status_file"] or os.path.join(
            self.host.state_directory, default_status_name(getattr(self.host, "state_file", "")))
        self.jobs_file = self.settings["jobs_file"]
        for path in filter(None, (self.status_file, self.jobs_file)):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        for event in TRIGGERS:
            self.host.register_event_handler(event, self.on_change)
        log.info("status file %s%s", self.status_file,
                 f", jobs file {self.jobs_file}" if self.jobs_file else "")

    clock = staticmethod(time.monotonic)  # seams for tests
    sleep = staticmethod(time.sleep)
    _written_at = -MIN_INTERVAL

    def on_change(self, *_args: MirrorEvent | str | int) -> None:
        """Rewrite the files, unless more events are queued (the last one rewrites them).

        Within MIN_INTERVAL of the last rewrite it first waits, on this plugin's own
        thread, for the rest of the interval; events that arrive meanwhile are folded
        into the same rewrite.
        """
        if self.host.events_pending():
            return
        wait = self._written_at + MIN_INTERVAL - self.clock()
        if wait > 0:
            self.sleep(wait)
            if self.host.events_pending():
                return
        self._written_at = self.clock()
        try:
            snapshot = self.host.snapshot()
        except UNANSWERED:
            return  # stopping: the files keep what they last said
        self._write(self.status_file, object_pieces(status_members(snapshot)))
        if self.jobs_file:
            self._write(self.jobs_file, array_pieces(jobs_values(snapshot)))

    @staticmethod
    def _write(path: str, pieces: Iterable[str]) -> None:
        """Write the text *pieces* make to *path*, atomically, as they come; a failure to
        write is logged."""
        try:
            write_atomically(path, pieces)
        except OSError as problem:
            log.error("cannot write %s: %s", path, problem.strerror or problem)
