# SPDX-License-Identifier: GPL-3.0-or-later
"""Starting the daemon: checks, files, logging, detaching, privileges; and stopping it cleanly.

Everything that can fail is checked before detaching, so the admin sees the
message on the terminal and gets exit status 1.
"""
from __future__ import annotations

import contextlib
import cProfile
import grp
import logging
import logging.handlers
import os
import pwd
import sys
from dataclasses import dataclass

from mirror.config import MirrorConfig
from mirror.daemon import DaemonPaths, MirrorDaemon
from mirror.i18n import _
from mirror.localzone import local_zone
from mirror.locations import ConfigLocation, pidfile_path, socket_path
from mirror.pidfile import PidFile
from mirror.process import become_subreaper
from mirror.signals import SignalPipe

log = logging.getLogger("mirror")

DEFAULT_LOGFILE = "/var/log/mirrord/mirrord.log"
PROFILE_NAME = "mirrord.profile"
SYSTEM_STATEFILE = "/var/lib/mirror/state.json"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
MAX_SOCKET_PATH = 107
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ReopeningFileHandler(logging.handlers.WatchedFileHandler):
    """WatchedFileHandler that keeps logging to the open file when the path cannot be checked.

    The standard one raises from emit() when stat() on the path fails with
    anything but "not found" (a directory made unreadable, say), which would
    end the daemon over a log line.
    """

    def reopenIfNeeded(self) -> None:
        with contextlib.suppress(OSError):
            super().reopenIfNeeded()


class StartupError(Exception):
    """Something that stops the daemon from starting; the message says what and where."""


@dataclass
class DaemonOptions:
    """The command-line options that shape a daemon start."""

    foreground: bool = False
    logfile: str | None = None
    level: str = "info"
    append: bool = False
    pidfile: str | None = None
    user: str | None = None
    group: str | None = None
    profile: bool = False


def default_statefile() -> str:
    """state.json in systemd's $STATE_DIRECTORY (a unit's StateDirectory=); else
    /var/lib/mirror/state.json for root, $XDG_STATE_HOME/mirror/state.json for others."""
    given = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if given:
        return os.path.join(given, "state.json")
    if os.geteuid() == 0:
        return SYSTEM_STATEFILE
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return os.path.join(base, "mirror", "state.json")


def _ensure_directory(path: str, what: str, hint: str) -> None:
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as problem:
        raise StartupError(_("cannot create the {what} {path}: {reason} ({hint})").format(
            what=what, path=path, reason=problem.strerror or problem, hint=hint)) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StartupError(_("the {what} {path} is not writable ({hint})").format(
            what=what, path=path, hint=hint))


def _user_and_group(options: DaemonOptions) -> tuple[pwd.struct_passwd | None, int | None]:
    if options.user is None and options.group is None:
        return None, None
    if os.geteuid() != 0:
        raise StartupError(_("-u and -g need mirrord to be started as root"))
    user = None
    if options.user is not None:
        try:
            user = pwd.getpwnam(options.user)
        except KeyError:
            raise StartupError(_("-u: no user named {name!r}").format(name=options.user)) \
                from None
    gid = user.pw_gid if user else None
    if options.group is not None:
        try:
            gid = grp.getgrnam(options.group).gr_gid
        except KeyError:
            raise StartupError(_("-g: no group named {name!r}").format(name=options.group)) \
                from None
    return user, gid


def _setup_logging(options: DaemonOptions) -> logging.Handler | None:
    root = logging.getLogger()
    root.handlers.clear()
    if options.level == "none":
        logging.disable(logging.CRITICAL)
        return None
    root.setLevel(LEVELS[options.level])
    path = options.logfile or DEFAULT_LOGFILE
    _ensure_directory(os.path.dirname(os.path.abspath(path)), _("log directory"),
                      _("choose another log file with -l"))
    try:
        handler: logging.Handler = ReopeningFileHandler(
            path, mode="a" if options.append else "w", encoding="utf-8")
    except OSError as problem:
        raise StartupError(_("cannot open the log file {path}: {reason} (choose another "
                             "with -l)").format(path=path, reason=problem.strerror)) from None
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    if options.foreground:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(console)
    return handler


def _drop_privileges(user: pwd.struct_passwd | None, gid: int | None,
                     owned: list[str]) -> None:
    uid = user.pw_uid if user else os.getuid()
    group = gid if gid is not None else os.getgid()
    for path in owned:
        if os.path.exists(path):
            os.chown(path, uid, group)
    if user is not None:
        os.setgroups(os.getgrouplist(user.pw_name, group))
    else:
        os.setgroups([group])
    os.setgid(group)
    if user is not None:
        os.setuid(user.pw_uid)
        os.environ.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)


def _check_access(paths: DaemonPaths, logdir: str) -> None:
    """After switching users: can the daemon still write what it must?"""
    for directory, what in ((os.path.dirname(paths.statefile), _("state directory")),
                            (logdir, _("task log directory")),
                            (os.path.dirname(paths.pidfile), _("pidfile directory"))):
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StartupError(_("as uid {uid}, the {what} {path} is not writable (give it to "
                                 "that user, or choose another with -u)").format(
                                     uid=os.getuid(), what=what, path=directory))


def run_daemon(location: ConfigLocation, config: MirrorConfig, options: DaemonOptions) -> int:
    """Check, set up and run the daemon until it stops.

    Returns:
        0 after a clean stop.

    Raises:
        StartupError: the daemon cannot start; nothing has been left running.
        AlreadyRunning: another daemon holds the pidfile.
    """
    if config.errors:
        raise StartupError(_("the config has {count} errors; mirrord does not start").format(
            count=len(config.errors)))
    user, gid = _user_and_group(options)
    pidfile = pidfile_path(location, options.pidfile)
    paths = DaemonPaths(pidfile=pidfile, socket=socket_path(pidfile),
                        statefile=config.general.statefile or default_statefile())
    if len(paths.socket.encode()) > MAX_SOCKET_PATH:
        raise StartupError(_("the control socket path {path} is longer than {limit} bytes; "
                             "put the pidfile somewhere shorter with -P").format(
                                 path=paths.socket, limit=MAX_SOCKET_PATH))
    _ensure_directory(os.path.dirname(pidfile), _("pidfile directory"),
                      _("choose another pidfile with -P"))
    _ensure_directory(os.path.dirname(paths.statefile), _("state directory"),
                      _("set statefile in [general]"))
    _ensure_directory(config.general.logdir, _("task log directory"), _("set logdir in [general]"))
    lock = PidFile(pidfile)
    try:
        lock.acquire()
    except OSError as problem:
        raise StartupError(_("cannot create the pidfile {path}: {reason}").format(
            path=pidfile, reason=problem.strerror)) from None
    try:
        handler = _setup_logging(options)
        zone = local_zone()
        daemon = MirrorDaemon(location, config, paths, zone)
        try:
            daemon.control.bind()
        except OSError as problem:
            raise StartupError(_("cannot create the control socket {path}: {reason}").format(
                path=paths.socket, reason=problem.strerror or problem)) from None
        for issue in config.warnings:
            log.warning("%s", issue)
        logfile = None if handler is None else options.logfile or DEFAULT_LOGFILE
        if user is not None or gid is not None:
            try:
                _drop_privileges(user, gid, [path for path in (
                    pidfile, paths.socket, paths.statefile, os.path.dirname(paths.statefile),
                    config.general.logdir, logfile) if path])
            except OSError as problem:  # e.g. no CAP_SETUID/CAP_CHOWN in a hardened unit
                raise StartupError(_("cannot switch to the user and group of -u and -g: "
                                     "{reason} (mirrord needs root's capabilities for that)")
                                   .format(reason=problem.strerror or problem)) from None
            _check_access(paths, config.general.logdir)
        if options.foreground:
            os.umask(0o022)
            os.chdir("/")
        else:
            _detach([fd for fd in (lock.fd, daemon.control.sock.fileno() if daemon.control.sock
                                   else None, _stream_fd(handler)) if fd is not None])
        lock.write(os.getpid())
        become_subreaper()
        signals = SignalPipe()
        daemon.load_plugins()
        profiler = cProfile.Profile() if options.profile else None
        if profiler:
            profiler.enable()
        try:
            daemon.serve(signals.read_fd, signals.drain)
        except Exception:
            log.critical("mirrord failed", exc_info=True)
            raise
        finally:
            signals.close()
            if profiler:
                profiler.disable()
                target = os.path.join(os.path.dirname(pidfile), PROFILE_NAME)
                profiler.dump_stats(target)
                log.info("profile written to %s", target)
    finally:
        lock.release()
    return 0


def _stream_fd(handler: logging.Handler | None) -> int | None:
    stream = getattr(handler, "stream", None)
    return stream.fileno() if stream is not None else None


def _detach(keep: list[int]) -> None:
    """Become a background daemon (python-daemon): fork twice, setsid, umask 022, chdir /,
    stdio to /dev/null, every other descriptor closed."""
    import daemon  # python-daemon

    context = daemon.DaemonContext(working_directory="/", umask=0o022, detach_process=True,
                                   files_preserve=keep, signal_map={})
    context.open()

