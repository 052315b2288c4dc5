# SPDX-License-Identifier: GPL-3.0-or-later
"""Client commands: ``-t``, ``--status``, ``--run``, ``--cancel`` and ``-s stop|reload``."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import sys
import time
from typing import Any

from mirror.control import DaemonUnavailable, request
from mirror.i18n import _
from mirror.locations import locate_config, pidfile_path, socket_path
from mirror.pidfile import ForgedPidFile, locked_pid
from mirror.tables import format_table

EXIT_OK = 0
EXIT_FAILED = 1
STOP_WAIT_SECONDS = 120
RESTART_WAIT_SECONDS = 120  # the new code's trial run, the plugins' stop, the new image's start
RESTART_POLL_SECONDS = 0.1
COLOURS = {"run": "32", "retry": "33", "timeout": "31", "system": "36",
           "running": "32", "disabled": "2"}


def _coloured_table(rows: list[list[str]]) -> str:
    """A table whose second column (kind or state) is coloured on a terminal."""
    return format_table(rows, colour_column=1, colours=COLOURS if sys.stdout.isatty() else None)


def _show(value: object) -> str:
    return "-" if value is None else str(value)


def print_queue(reply: dict[str, Any], as_json: bool) -> None:
    """Print the queue reply as a table (colours on a terminal) or as JSON."""
    if as_json:
        print(json.dumps(reply["queue"], ensure_ascii=False, indent=1))
        return
    rows = [[_("NAME"), _("KIND"), _("DUE"), _("PRIORITY")]]
    rows += [[entry["name"], entry["kind"], entry["due"], str(entry["priority"])]
             for entry in reply["queue"]]
    print(_coloured_table(rows) if len(rows) > 1 else _("the queue is empty"))


def print_status(reply: dict[str, Any], as_json: bool) -> None:
    """Print the status reply as a table or as one JSON object keyed by task name."""
    tasks = reply["tasks"]
    if as_json:
        print(json.dumps(tasks, ensure_ascii=False, indent=1))
        return
    rows = [[_("NAME"), _("STATE"), _("PID"), _("STAGE"), _("STARTED"), _("LAST RESULT"),
             _("EXIT"), _("LAST SUCCESS"), _("NEXT RUN"), _("UPSTREAM")]]
    for name, task in tasks.items():
        stage = f"{task['stage']}/{task['stages']}" if task["stage"] else "-"
        exit_shown = task["signal"] or task["exit_code"]
        rows.append([name, task["state"], _show(task["pid"]), stage, _show(task["started"]),
                     _show(task["last_result"]), _show(exit_shown), _show(task["last_success"]),
                     _show(task["next_run"]), _show(task["upstream"])])
    print(_coloured_table(rows))


def _wait_for_exit(pid: int, pidfile: str, seconds: float) -> bool:
    """Wait until *pid* has exited (pidfd where the kernel has it), within *seconds*."""
    deadline = time.monotonic() + seconds
    try:
        handle = os.pidfd_open(pid)
    except (AttributeError, OSError):
        handle = None
    if handle is not None:
        try:
            ready, _w, _x = select.select([handle], [], [], seconds)
            return bool(ready)
        finally:
            os.close(handle)
    while time.monotonic() < deadline:  # no pidfd: a client may poll
        with contextlib.suppress(ForgedPidFile):
            if locked_pid(pidfile) is None:
                return True
        time.sleep(0.1)
    return False


def send_signal(action: str, pidfile: str) -> int:
    """``-s stop`` (TERM, then wait for the exit) or ``-s reload`` (HUP)."""
    try:
        pid = locked_pid(pidfile)
    except ForgedPidFile as problem:
        print(f"mirrord: {problem}", file=sys.stderr)
        return EXIT_FAILED
    if pid is None:
        print(_("mirrord: no mirrord is running (pidfile {path} is not locked)").format(
            path=pidfile), file=sys.stderr)
        return EXIT_FAILED
    try:
        os.kill(pid, signal.SIGTERM if action == "stop" else signal.SIGHUP)
    except ProcessLookupError:
        print(_("mirrord: pid {pid} from {path} does not exist").format(pid=pid, path=pidfile),
              file=sys.stderr)
        return EXIT_FAILED
    except PermissionError:
        print(_("mirrord: not allowed to signal pid {pid}; run as the daemon's user or root")
              .format(pid=pid), file=sys.stderr)
        return EXIT_FAILED
    if action == "reload":
        print(_("reload requested (pid {pid}); the daemon log says whether it applied").format(
            pid=pid))
        return EXIT_OK
    if not _wait_for_exit(pid, pidfile, STOP_WAIT_SECONDS):
        print(_("mirrord: pid {pid} has not exited after {seconds} s").format(
            pid=pid, seconds=STOP_WAIT_SECONDS), file=sys.stderr)
        return EXIT_FAILED
    print(_("mirrord (pid {pid}) stopped").format(pid=pid))
    return EXIT_OK


def restart_daemon(sock: str) -> int:
    """``-s restart``: ask the daemon to execute the code installed now in its place, then
    wait until the new image answers (or the old one says why it could not)."""
    try:
        reply = request(sock, {"command": "restart"}, timeout=RESTART_WAIT_SECONDS)
    except DaemonUnavailable as problem:
        print(f"mirrord: {problem}", file=sys.stderr)
        return EXIT_FAILED
    if not reply.get("ok"):
        print(f"mirrord: {reply.get('error') or _('the request failed')}", file=sys.stderr)
        for issue in reply.get("errors") or ():
            print(f"  {issue}", file=sys.stderr)
        return EXIT_FAILED
    old_image = reply.get("image")
    deadline = time.monotonic() + RESTART_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(RESTART_POLL_SECONDS)
        try:
            info = request(sock, {"command": "info"},
                           timeout=max(0.1, deadline - time.monotonic()))
        except DaemonUnavailable:
            continue
        if info.get("image") != old_image:
            print(_("mirrord restarted in place (pid {pid}, version {version}); {running} "
                    "runs carry on").format(pid=info.get("pid"), version=info.get("version"),
                                            running=info.get("running")))
            return EXIT_OK
        if info.get("restart_error"):
            print(_("mirrord: the restart failed: {reason}").format(
                reason=info["restart_error"]), file=sys.stderr)
            return EXIT_FAILED
    print(_("mirrord: no new image answered within {seconds} s; see the daemon log").format(
        seconds=RESTART_WAIT_SECONDS), file=sys.stderr)
    return EXIT_FAILED


def run_client(args: argparse.Namespace) -> int:
    """Carry out a client action against the daemon found through -c and -P."""
    pidfile = pidfile_path(locate_config(args.config), args.pidfile)
    sock = socket_path(pidfile)
    if args.signal == "restart":
        return restart_daemon(sock)
    if args.signal:
        return send_signal(args.signal, pidfile)
    if args.queue:
        message: dict[str, object] = {"command": "queue"}
    elif args.status:
        message = {"command": "status"}
    elif args.run:
        message = {"command": "run", "name": args.run, "wait": args.wait}
    else:
        message = {"command": "cancel", "name": args.cancel}
    try:
        reply = request(sock, message, timeout=None if args.wait else 30.0)
    except DaemonUnavailable as problem:
        print(f"mirrord: {problem}", file=sys.stderr)
        return EXIT_FAILED
    if not reply.get("ok"):
        text = reply.get("error") or _("the request failed")
        if reply.get("known") is not None:
            text += _("; known tasks: {names}").format(names=", ".join(reply["known"]))
        print(f"mirrord: {text}", file=sys.stderr)
        return EXIT_FAILED
    if args.queue:
        print_queue(reply, args.json)
    elif args.status:
        print_status(reply, args.json)
    elif args.run and args.wait:
        print(_("{name}: {result}").format(name=reply["name"], result=reply["result"]))
    elif args.run:
        print(_("{name}: started, pid {pid}").format(name=reply["name"], pid=reply["pid"]))
    else:
        print(_("{name}: cancelling").format(name=reply["name"]))
    return EXIT_OK
