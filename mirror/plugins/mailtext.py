# SPDX-License-Identifier: GPL-3.0-or-later
"""What Notifier's mails say: which runs deserve one, their subject and body, and the log tail.

Pure functions apart from :func:`read_tail`, which reads the end of a file. The
email package is imported by :func:`message`, when a mail is made.
"""
from __future__ import annotations

import dataclasses
import os
import re
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from mirror.localzone import iso
from mirror.plugin import (
    FAILED,
    INTERRUPTED,
    STALLED,
    SUCCESS,
    TIMEOUT,
    UNATTENDED,
    UNCHANGED,
    RunFinishedEvent,
    TaskView,
)
from mirror.plugins.feeds import result_message

if TYPE_CHECKING:
    from email.message import EmailMessage

FAILURE = "failure"
RECOVERY = "recovery"
TAIL_LINES = 50
TAIL_BYTES = 64 * 1024  # a log of a few enormous lines must not become an enormous mail
_BLOCK = 8192
# mirror.runs.footer_line: the line written when a stage ends.
_FOOTER = re.compile(r"=== mirrord (\S+) end (\S+) stage [0-9]+/[0-9]+: ")
# The results that start a failure streak: the sync failed, or may have. Unattended and
# interrupted runs follow a crash of mirrord, which an admin must hear about.
_BAD = (FAILED, TIMEOUT, STALLED, UNATTENDED, INTERRUPTED)
# Results without an exit status whose run still wrote a footer (mirrord wrote it for them).
_FOOTED = (UNATTENDED, INTERRUPTED)


def transition(event: RunFinishedEvent) -> str | None:
    """Whether *event* starts a failure streak (FAILURE) or ends one (RECOVERY), else None.

    A run that failed, timed out, ended unattended or was interrupted after a success (or as
    the first run) starts one. Cancelled and killed runs are neither: they say nothing about
    the upstream.
    """
    if event.result in _BAD and event.previous_failures == 0:
        return FAILURE
    if event.result in (SUCCESS, UNCHANGED) and event.previous_failures > 0:
        return RECOVERY
    return None


def read_tail(path: str, lines: int = TAIL_LINES, limit: int = TAIL_BYTES) -> list[str]:
    """The last *lines* lines of the file at *path*, reading at most *limit* bytes from its end.

    Bytes that are not UTF-8 become U+FFFD. When *limit* cuts a line, its kept end
    is prefixed with ``[…]``.

    Raises:
        OSError: the file cannot be opened or read.
    """
    with open(path, "rb") as stream:
        end = stream.seek(0, os.SEEK_END)
        start = end
        data = b""
        # One newline more than lines wanted, so that the oldest kept line is whole.
        while start > 0 and end - start < limit and data.count(b"\n") <= lines:
            step = min(_BLOCK, start, limit - (end - start))
            start -= step
            stream.seek(start)
            data = stream.read(step) + data
    chunks = data.split(b"\n")
    if chunks[-1] == b"":
        chunks.pop()
    cut = start > 0 and 0 < len(chunks) <= lines
    if start > 0 and not cut:
        chunks = chunks[1:]  # began mid-line, and there are enough whole lines anyway
    tail = [chunk.decode("utf-8", errors="replace") for chunk in chunks[-lines:]]
    if cut:
        tail[0] = "[…] " + tail[0]
    return tail


def log_excerpt(event: RunFinishedEvent, lines: int = TAIL_LINES) -> list[str]:
    """The last *lines* lines *event*'s run wrote to its log.

    Runs of a day share one log file, so lines a later run already appended
    (when this plugin is behind) are left out.

    Raises:
        OSError: the log cannot be opened or read.
    """
    return own_lines(read_tail(event.log_path, lines * 4), event)[-lines:]


def own_lines(tail: list[str], event: RunFinishedEvent) -> list[str]:
    """*tail* (the end of the run's log file) cut after the run's last footer line.

    That footer is the last one of the task stamped no later than the run's end.
    A run whose stage never started wrote no footer of its own; then *tail* is kept.
    """
    if event.exit_code is None and event.signal is None and event.result not in _FOOTED:
        return tail
    for index in range(len(tail) - 1, -1, -1):
        match = _FOOTER.match(tail[index])
        if match and match.group(2) == event.taskname:
            try:
                stamp = datetime.fromisoformat(match.group(1)).timestamp()
            except ValueError:
                continue
            if stamp <= event.ended:
                return tail[:index + 1]
    return tail


def subject(event: RunFinishedEvent, kind: str, hostname: str) -> str:
    """``[mirror HOST] debian failed (exit 23)``, ``… timed out``, ``… ended while
    unattended``, ``… interrupted``, ``… recovered``."""
    if kind == RECOVERY:
        what = "recovered"
    elif event.result == TIMEOUT:
        what = "timed out"
    elif event.result == UNATTENDED:
        what = "ended while unattended"
    elif event.result == INTERRUPTED:
        what = "interrupted"
    elif event.signal is not None:
        what = f"failed ({event.signal})"
    elif event.exit_code is None:
        what = "failed (could not start)"
    else:
        what = f"failed (exit {event.exit_code})"
    return f"[mirror {hostname}] {event.taskname} {what}"


def _result(event: RunFinishedEvent, view: TaskView | None) -> str:
    if view is None:  # removed by a reload before its run ended: its type is unknown
        return event.result
    meaning = result_message(dataclasses.replace(
        view, result=event.result, exit_code=event.exit_code, signal=event.signal))
    return f"{event.result}: {meaning}"


def body(event: RunFinishedEvent, kind: str, view: TaskView | None, zone: tzinfo,
         tail: list[str] | None, tail_problem: str | None = None) -> str:
    """The mail's text.

    Args:
        event: the run that ended.
        kind: FAILURE or RECOVERY.
        view: the task as the daemon sees it now (for its type), or None if it is gone.
        zone: the daemon's time zone, for the times shown.
        tail: the log's last lines, or None when they could not be read ...
        tail_problem: ... and then why.

    Returns:
        Plain text, lines separated by ``\\n``.
    """
    name = event.taskname
    if kind == RECOVERY:
        plural = "s" if event.previous_failures != 1 else ""
        opening = (f"{name} synced successfully again, after {event.previous_failures} "
                   f"failed run{plural}.")
    elif event.result == UNATTENDED:
        opening = (f"{name}'s sync ended while mirrord was not watching it: mirrord had "
                   f"crashed or been killed, and the mirrord started after it took the "
                   f"running sync over but could not learn its exit status. It counts as "
                   f"failed. You get no further mail while it keeps failing, and one when it "
                   f"succeeds again.")
    elif event.result == INTERRUPTED:
        opening = (f"{name}'s sync was interrupted: mirrord had crashed or been killed, and "
                   f"when mirrord started again the sync's processes were gone. Whether it "
                   f"finished is unknown; it is not counted as a failure, so no recovery "
                   f"mail follows.")
    else:
        what = "timed out" if event.result == TIMEOUT else "failed"
        opening = (f"{name} {what}. You get no further mail while it keeps failing, "
                   f"and one when it succeeds again.")
    if event.signal is not None:
        status = ("Signal", event.signal)
    elif event.result in _FOOTED:
        status = ("Exit code", "unknown (mirrord was not running when it ended)"
                  if event.result == INTERRUPTED else
                  "unknown (its process was not a child of this mirrord)")
    elif event.exit_code is None:
        status = ("Exit code", "none (the command could not be started)")
    else:
        status = ("Exit code", str(event.exit_code))
    rows = [("Task", name), ("Result", _result(event, view)), status,
            ("Upstream", event.upstream or "none"),
            ("Started", iso(event.started, zone) or ""),
            ("Ended", f"{iso(event.ended, zone)} (after {event.duration:.0f} s)"),
            ("Stage", f"{event.stage} of {event.stages}")]
    if kind == FAILURE:
        retry = iso(event.retry_at, zone) if event.retry_at is not None else None
        rows.append(("Next retry", retry or "none; the next scheduled run tries again"))
    rows.append(("Log", event.log_path))
    width = max(len(label) for label, _ in rows) + 2
    lines = [opening, ""] + [f"{label + ':':<{width}}{value}" for label, value in rows] + [""]
    if tail is None:
        lines.append(f"The log cannot be read: {tail_problem}")
    elif not tail:
        lines.append("The log is empty.")
    else:
        lines.append(f"The last {len(tail)} lines of the log:")
        lines.append("")
        lines.extend(tail)
    return "\n".join(lines) + "\n"


def message(subject_text: str, text: str, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    """A plain-text UTF-8 mail from *sender* to *recipients*, with Date and Message-ID."""
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    mail = EmailMessage()
    mail["Subject"] = subject_text
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Date"] = formatdate(localtime=True)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: keeps vacation replies away
    mail.set_content(text)
    return mail
