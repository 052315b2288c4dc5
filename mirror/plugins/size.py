# SPDX-License-Identifier: GPL-3.0-or-later
"""Size: the size of each mirror, read from rsync's ``--stats`` output in the run's log.

After every successful run, the log's tail is searched for ``Total file size:
N bytes`` written since the run began; the last match wins. A run that reports
none keeps the last known size, and so does a failed run (its file list may be
partial).
"""
from __future__ import annotations

import logging
import os
import re

from mirror.plugin import SUCCESS, PluginBase, RunFinishedEvent

log = logging.getLogger(__name__)

TAIL_BYTES = 256 * 1024  # --stats output closes a stage; it is always in the tail
TOTAL_SIZE = re.compile(r"Total file size: ([0-9][0-9.,]*)\s*([KMGTPE]?)B? bytes")
# rsync 3.1+ with -h prints units of 1000 (-hh: 1024, indistinguishable in the output).
UNITS = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5,
         "E": 1000**6}


def parse_total_size(text: str) -> int | None:
    """The last ``Total file size`` in *text*, in bytes; None if there is none.

    Accepts plain (``123456``), separated (``1,234,567`` or ``1.234.567``) and
    human-readable (``1.23G``, ``1,23G``) numbers.
    """
    size = None
    for match in TOTAL_SIZE.finditer(text):
        number, unit = match.groups()
        if unit:
            try:
                size = round(float(number.replace(",", ".")) * UNITS[unit])
            except ValueError:
                continue
        else:
            size = int(number.replace(",", "").replace(".", ""))
    return size


def read_run_tail(path: str, taskname: str) -> str:
    """The end of the log at *path* that belongs to *taskname*'s latest run.

    Raises:
        OSError: the log cannot be read.
    """
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - TAIL_BYTES))
        tail = handle.read().decode("utf-8", "replace")
    start = tail.rfind(f" start {taskname} stage 1/")
    return tail if start < 0 else tail[start:]


class Size(PluginBase):
    """Reports each run's total file size to the daemon (``host.set_task_size``)."""

    def enable(self) -> None:
        self.host.register_event_handler("RunFinishedEvent", self.on_run_finished)

    def on_run_finished(self, event: RunFinishedEvent) -> None:
        if event.result != SUCCESS:
            return
        try:
            text = read_run_tail(event.log_path, event.taskname)
        except OSError as problem:
            log.warning("%s: cannot read %s for its size: %s", event.taskname, event.log_path,
                        problem.strerror or problem)
            return
        size = parse_total_size(text)
        if size is None:
            log.debug("%s: the run reported no size; the last known one stays", event.taskname)
            return
        self.host.set_task_size(event.taskname, size)
