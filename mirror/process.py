# SPDX-License-Identifier: GPL-3.0-or-later
"""Child processes: start each run in its own session, end whole process groups, reap.

Children are started with posix_spawn (no Python code runs between fork and
exec, which is safe in a threaded process). Every descriptor the daemon opens
is close-on-exec, so a child inherits only stdin (/dev/null) and the task log
on stdout and stderr.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
from collections.abc import Mapping

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux), so that what a sync leaves behind is reaped here.

    Returns:
        Whether the kernel accepted it.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def spawn(argv: list[str], log_path: str, environ: Mapping[str, str] | None = None) -> int:
    """Start *argv* in a new session, stdin from /dev/null, stdout and stderr appended to
    *log_path*.

    The child opens the log itself (a posix_spawn file action, as the daemon's user), so the
    call holds no descriptor of the daemon's and needs the GIL only to convert its arguments.

    Args:
        argv: the command; argv[0] must be a path (it is not looked up on PATH).
        log_path: the task log; it must exist already (the daemon wrote its header).
        environ: the child's environment; the daemon's by default.

    Returns:
        The child's pid, which is also its process group and session id.

    Raises:
        OSError: the program could not be started (missing, not executable, …) or the log
            could not be opened.
    """
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, log_path, os.O_WRONLY | os.O_APPEND, 0),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(argv[0], argv, os.environ if environ is None else environ,
                          file_actions=actions, setsid=True,
                          setsigdef=(signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                                     signal.SIGCHLD, signal.SIGPIPE))


def signal_group(pgid: int, signum: int) -> bool:
    """Send *signum* to every process in group *pgid*; tell whether any process got it."""
    try:
        os.killpg(pgid, signum)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        log.error("not allowed to signal process group %d", pgid)
        return False


def group_alive(pgid: int) -> bool:
    """Whether any process is left in group *pgid* (zombies not yet reaped count)."""
    return signal_group(pgid, 0)


def reap() -> list[tuple[int, int]]:
    """Collect every child that has exited, repeating waitpid until it reports none.

    Returns:
        ``(pid, wait status)`` pairs.
    """
    ended: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, status))


def describe_status(status: int) -> tuple[int | None, int | None, str]:
    """Decode a wait status into ``(exit code, signal number, text)``."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return None, number, f"killed by {name}"
    code = os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else status
    return code, None, f"exit {code}"
