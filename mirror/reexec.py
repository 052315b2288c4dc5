# SPDX-License-Identifier: GPL-3.0-or-later
"""Upgrading in place: mirrord executes itself again, with the same pid, the new code and the
new config, and the syncs stay its children.

The old image hands the new one what must never be closed: the control socket's listening
descriptor (clients wait in its backlog, none is refused), the pidfile lock, the state file
lock and the daemon log. They are named in ``$MIRRORD_HANDOVER``; the runs in progress are
in the state file, written just before. The signals mirrord handles are blocked across the
exec (a blocked signal stays pending through it) until the new image's handlers are in place.

Before anything is stopped, the new code is tried: the same command line, run as a child with
``$MIRRORD_PREFLIGHT`` set, must load the config, import the daemon and the plugins, and say
so. Code that fails to import, or an interpreter that cannot run, is refused while the old
image still runs every sync.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import asdict, dataclass

from mirror.cli import PREFLIGHT_VARIABLE
from mirror.i18n import _
from mirror.signals import HANDLED

HANDOVER_VARIABLE = "MIRRORD_HANDOVER"
PREFLIGHT_MARK = "mirrord-preflight-ok"
PREFLIGHT_SECONDS = 30.0  # the loop waits meanwhile
MAX_REASON = 2000  # characters of a failed preflight's output kept for the log and the client


class HandoverError(Exception):
    """``$MIRRORD_HANDOVER`` is set but cannot be used; the message says why."""


@dataclass(frozen=True)
class Handover:
    """The descriptors one image of mirrord hands the next, and where it was started.

    ``cwd`` is the directory the first image was started in (``python -m mirror`` finds the
    package there); ``log`` is None when mirrord logs nowhere (``-L none``).
    """

    pid: int
    control: int
    pidfile: int
    state_lock: int
    log: int | None
    log_path: str | None
    cwd: str
    state_digest: str | None = None  # the SHA-256 of the state file as the old image wrote it
    # The runs' processes (the old image's children), and the process groups it was ending
    # (SIGKILL after killgrace): known here, not from the state file, which a less
    # privileged user may be able to replace.
    children: tuple[int, ...] = ()
    ending_groups: tuple[int, ...] = ()

    def descriptors(self) -> tuple[int, ...]:
        """The descriptors handed over."""
        return tuple(fd for fd in (self.control, self.pidfile, self.state_lock, self.log)
                     if fd is not None)

    def encode(self) -> str:
        """The value of ``$MIRRORD_HANDOVER``."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def take(cls, environ: MutableMapping[str, str]) -> Handover | None:
        """The handover this image was given, removed from *environ* (the syncs must not
        inherit it); None for an ordinary start.

        Raises:
            HandoverError: the variable is set, but not by an image of this very process, or
                names descriptors that are not open as they should be.
        """
        text = environ.pop(HANDOVER_VARIABLE, None)
        if text is None:
            return None
        try:
            data = json.loads(text)
            handover = cls(pid=_integer(data, "pid"), control=_integer(data, "control"),
                           pidfile=_integer(data, "pidfile"),
                           state_lock=_integer(data, "state_lock"),
                           log=None if data["log"] is None else _integer(data, "log"),
                           log_path=None if data["log_path"] is None
                           else _text(data, "log_path"),
                           cwd=_text(data, "cwd"),
                           state_digest=None if data.get("state_digest") is None
                           else _text(data, "state_digest"),
                           children=_integers(data, "children"),
                           ending_groups=_integers(data, "ending_groups"))
        except (KeyError, ValueError, TypeError, AttributeError) as problem:
            raise HandoverError(_("${name} is not a handover from mirrord ({reason}); unset "
                                  "it").format(name=HANDOVER_VARIABLE, reason=problem)) from None
        if handover.pid != os.getpid():
            raise HandoverError(_("${name} was meant for process {pid}, not this one; unset "
                                  "it").format(name=HANDOVER_VARIABLE, pid=handover.pid))
        handover._check()
        return handover

    def _check(self) -> None:
        expected: list[tuple[int | None, Callable[[int], bool], str]] = [
            (self.control, stat.S_ISSOCK, "control socket"),
            (self.pidfile, stat.S_ISREG, "pidfile"),
            (self.state_lock, stat.S_ISREG, "state file lock"),
            (self.log, stat.S_ISREG, "log")]
        for fd, kind, what in expected:
            if fd is None:
                continue
            try:
                mode = os.fstat(fd).st_mode
            except OSError as problem:
                raise HandoverError(_("the {what} handed over (descriptor {fd}) is not open: "
                                      "{reason}").format(what=what, fd=fd,
                                                         reason=problem.strerror)) from None
            if not kind(mode):
                raise HandoverError(_("the {what} handed over (descriptor {fd}) is not what "
                                      "it should be").format(what=what, fd=fd))
            os.set_inheritable(fd, False)  # the syncs must not get them


def _integer(data: Mapping[str, object], key: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(_("{key!r} is not a descriptor or pid").format(key=key))
    return value


def _integers(data: Mapping[str, object], key: str) -> tuple[int, ...]:
    values = data.get(key, [])
    if not isinstance(values, list):
        raise ValueError(_("{key!r} is not a list of pids").format(key=key))
    return tuple(_integer({key: value}, key) for value in values)


def _text(data: Mapping[str, object], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(_("{key!r} is not a string").format(key=key))
    return value


def image_argv() -> list[str]:
    """The command line that started this process, with the interpreter's absolute path: run
    again, it starts the code installed now (``pip install -U`` replaced the files)."""
    original = getattr(sys, "orig_argv", None)  # Python 3.10 and later
    if original:
        return [sys.executable, *original[1:]]
    if os.path.basename(sys.argv[0]) == "__main__.py":  # python3.9 -m mirror
        return [sys.executable, "-m", "mirror", *sys.argv[1:]]
    return [sys.executable, *sys.argv]


class Restarter:
    """Tries the new code, then executes it in place of this image.

    Args:
        argv: the command line of the new image (:func:`image_argv`).
        cwd: where the first image was started (``python -m mirror`` imports from there).
        handover: gives what to hand over, at the moment of the exec.
    """

    def __init__(self, argv: list[str], cwd: str, handover: Callable[[], Handover]) -> None:
        self.argv = argv
        self.cwd = cwd
        self.handover = handover

    def preflight(self, environ: Mapping[str, str]) -> str | None:
        """Run the new code as a child that loads the config, imports the daemon and the
        plugins, and exits (blocks for up to PREFLIGHT_SECONDS).

        Returns:
            None when it worked; else why not, for the log and the client.
        """
        child_environ = {key: value for key, value in environ.items()
                         if key != HANDOVER_VARIABLE}
        child_environ[PREFLIGHT_VARIABLE] = "1"
        try:
            result = subprocess.run(self.argv, env=child_environ, cwd=self.cwd,
                                    stdin=subprocess.DEVNULL, capture_output=True,
                                    timeout=PREFLIGHT_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            return _("the new code did not start within {seconds:g} s").format(
                seconds=PREFLIGHT_SECONDS)
        except OSError as problem:
            return _("cannot run {program}: {reason}").format(program=self.argv[0],
                                                              reason=problem.strerror or problem)
        said = result.stdout.decode("utf-8", "replace")
        if result.returncode == 0 and PREFLIGHT_MARK in said.split():
            return None
        output = (result.stderr or result.stdout).decode("utf-8", "replace").strip()
        if len(output) > MAX_REASON:
            output = "[…]" + output[-MAX_REASON:]
        return _("the new code failed to start (exit {code}): {output}").format(
            code=result.returncode, output=output or _("it printed nothing"))

    def execute(self, environ: Mapping[str, str]) -> OSError:
        """Execute the new image with *environ* and the handover. The caller blocks the
        signals mirrord handles first (:func:`hold_signals`), so that none is lost across
        the exec. Only returns when the exec failed: then this image is as it was (its
        descriptors close-on-exec again, its directory /), and can go on.

        Returns:
            Why the exec failed.
        """
        handover = self.handover()
        descriptors = handover.descriptors()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            for fd in descriptors:
                os.set_inheritable(fd, True)
            os.chdir(handover.cwd)
            os.execve(self.argv[0], self.argv,
                      {**environ, HANDOVER_VARIABLE: handover.encode()})
        except OSError as problem:
            failure = problem
        finally:
            _restore(descriptors)
        return failure


def hold_signals(drain: Callable[[], Iterable[int]]) -> Iterable[int]:
    """Block the signals mirrord handles, and make pending again those already recorded in
    the wakeup pipe (*drain* reads them): a pending signal survives an exec, the pipe does
    not. Returns the mask to restore (``signal.pthread_sigmask(SIG_SETMASK, …)``), after
    which the signals reach the handlers, and the pipe, again."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    for signum in set(drain()):
        os.kill(os.getpid(), signum)
    return previous


def _restore(descriptors: Iterable[int]) -> None:
    for fd in descriptors:
        with contextlib.suppress(OSError):
            os.set_inheritable(fd, False)
    os.chdir("/")


def adopt_socket(fd: int) -> socket.socket:
    """The listening control socket handed over as descriptor *fd*, non-blocking.

    Raises:
        HandoverError: it is not a listening Unix stream socket.
    """
    sock = socket.socket(fileno=fd)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise HandoverError(_("the control socket handed over (descriptor {fd}) is not a Unix "
                              "stream socket").format(fd=fd))
    sock.setblocking(False)
    return sock
