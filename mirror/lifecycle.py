# SPDX-License-Identifier: GPL-3.0-or-later
"""Starting the daemon: checks, files, logging, detaching, privileges; and stopping it cleanly.

Everything that can fail is checked before detaching, so the admin sees the
message on the terminal and gets exit status 1.
"""
from __future__ import annotations

import contextlib
import dataclasses
import grp
import importlib.util
import logging
import os
import pwd
import re
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mirror.config import MirrorConfig
from mirror.daemon import DaemonPaths, MirrorDaemon
from mirror.digest import sha256_hex
from mirror.fdlimits import raise_nofile_limit
from mirror.history import StateFileError
from mirror.i18n import _
from mirror.localzone import local_zone
from mirror.locations import ConfigLocation, default_config_dir, pidfile_path, socket_path
from mirror.pidfile import AlreadyRunning, PidFile
from mirror.pluginsettings import discover
from mirror.process import become_subreaper
from mirror.reexec import Handover, HandoverError, Restarter, adopt_socket, image_argv
from mirror.safeopen import UnsafePath, open_file
from mirror.signals import SignalPipe

if TYPE_CHECKING:
    from typing import TextIO

    from mirror.entrypoints import EntryPointLike

    _TextStreamHandler = logging.StreamHandler[TextIO]
else:  # not subscriptable at run time before Python 3.11
    _TextStreamHandler = logging.StreamHandler

log = logging.getLogger("mirror")

DEFAULT_LOGFILE = "/var/log/mirrord/mirrord.log"
PROFILE_NAME = "mirrord.profile"
SYSTEM_STATEFILE = "/var/lib/mirror/state.json"
STATEFILE_NAME = "state.json"
LOCK_SUFFIX = ".lock"
LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT
REOPEN_CHECK_SECONDS = 1.0  # how often the daemon log's path is checked for logrotate
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
MAX_SOCKET_PATH = 107
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def default_statefile(location: ConfigLocation | None = None) -> str:
    """Where the state goes when ``statefile`` is not set: one file per config directory.

    The directory: systemd's $STATE_DIRECTORY (a unit's StateDirectory=); else
    /var/lib/mirror for root, $XDG_STATE_HOME/mirror for others. The file:
    ``state.json`` for the default config directory (/etc/mirror, or the user's
    ~/.config/mirror), ``state-NAME-HASH.json`` for any other -c directory (HASH of its
    real path), so that two daemons with different configs never share one history.
    """
    given = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if given:
        directory = given
    elif os.geteuid() == 0:
        directory = os.path.dirname(SYSTEM_STATEFILE)
    else:
        base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".local", "state")
        directory = os.path.join(base, "mirror")
    return os.path.join(directory, statefile_name(location))


def statefile_name(location: ConfigLocation | None) -> str:
    """``state.json`` for the default config directory, else ``state-NAME-HASH.json``."""
    if location is None:
        return STATEFILE_NAME
    config_dir = os.path.realpath(location.directory)
    if config_dir == os.path.realpath(default_config_dir()):
        return STATEFILE_NAME
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(config_dir)).strip("._") or "root"
    digest = sha256_hex(config_dir.encode("utf-8", "surrogateescape"))[:8]
    return f"state-{name}-{digest}.json"


def _ensure_directory(path: str, what: str, hint: str) -> None:
    """Create *path* if missing (as the daemon's user), and check that it is writable."""
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as problem:
        raise StartupError(_("cannot create the {what} {path}: {reason} ({hint})").format(
            what=what, path=path, reason=problem.strerror or problem,
            hint=_directory_hint(path, hint))) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StartupError(_("as uid {uid}, the {what} {path} is not writable ({hint})").format(
            uid=os.getuid(), what=what, path=path, hint=_directory_hint(path, hint)))


def _directory_hint(path: str, hint: str) -> str:
    """What to run when a directory is wrong: mirrord never chowns one itself."""
    if os.getuid() == 0:
        return hint
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    try:
        group = grp.getgrgid(os.getgid()).gr_name
    except KeyError:
        group = str(os.getgid())
    return _("as root, run: install -d -o {user} -g {group} {path}; or {hint}").format(
        user=user, group=group, path=shlex.quote(path), hint=hint)


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


class SafeFileHandler(_TextStreamHandler):
    """The daemon's log: opened without following links, and reopened the same way when
    logrotate moves it (as logging.handlers.WatchedFileHandler does, whose module would cost
    the daemon pickle and more for this one class).

    When the new file cannot be opened (the daemon's user may not create files in a
    root-owned log directory; logrotate's ``create`` or ``copytruncate`` avoid that), it
    goes on writing to the file it has, says so there once, and tries again at the next
    line. It never raises from emit().
    """

    def __init__(self, path: str, fd: int) -> None:
        super().__init__(os.fdopen(fd, "a", encoding="utf-8"))
        self.path = path
        self._identity = self._stream_identity()
        self._reopen_failed = False
        self._checked_at = -REOPEN_CHECK_SECONDS

    def _stream_identity(self) -> tuple[int, int]:
        info = os.fstat(self.stream.fileno())
        return info.st_dev, info.st_ino

    def emit(self, record: logging.LogRecord) -> None:
        self._reopen_if_moved()
        super().emit(record)

    def _reopen_if_moved(self) -> None:
        now_monotonic = time.monotonic()
        if now_monotonic - self._checked_at < REOPEN_CHECK_SECONDS:
            return  # a stat per line would cost a busy burst; a second's delay costs nothing
        self._checked_at = now_monotonic
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None
        except OSError:
            return  # cannot tell (a directory made unreadable): keep the open file
        if now is not None and (now.st_dev, now.st_ino) == self._identity:
            return
        try:
            stream = os.fdopen(open_file(self.path, LOG_FLAGS), "a", encoding="utf-8")
        except OSError as problem:
            if not self._reopen_failed:
                self._reopen_failed = True
                with contextlib.suppress(OSError, ValueError):
                    self.stream.write(f"mirrord: cannot reopen {self.path} after it moved "
                                      f"({problem}); logging here until it can\n")
            return
        with contextlib.suppress(OSError, ValueError):
            self.stream.close()
        self.stream = stream
        self._identity = self._stream_identity()
        self._reopen_failed = False

    def close(self) -> None:
        self.acquire()
        try:
            with contextlib.suppress(OSError, ValueError):
                self.stream.close()
        finally:
            self.release()
        super().close()


def _open_logfile(options: DaemonOptions, owner: int | None) -> tuple[str, int] | None:
    """Open the daemon's log (as root, before any switch of users) without truncating it.

    Returns:
        (path, descriptor), or None with ``-L none``.

    Raises:
        StartupError: its directory is missing, or the path is not a safe regular file.
    """
    if options.level == "none":
        return None
    path = os.path.abspath(options.logfile or DEFAULT_LOGFILE)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        _ensure_directory(directory, _("log directory"), _("choose another log file with -l"))
    try:
        fd = open_file(path, LOG_FLAGS, owners=() if owner is None else (owner,))
    except OSError as problem:
        reason = problem if isinstance(problem, UnsafePath) else problem.strerror or problem
        raise StartupError(_("cannot open the log file {path}: {reason} (choose another "
                             "with -l)").format(path=path, reason=reason)) from None
    if owner is not None:
        try:
            os.fchown(fd, owner, -1)  # the descriptor, never a path: it cannot be a link
        except OSError as problem:  # no CAP_CHOWN, as in a hardened unit
            os.close(fd)
            raise StartupError(_("cannot switch to the user and group of -u and -g: "
                                 "{reason} (mirrord needs root's capabilities for that)")
                               .format(reason=problem.strerror or problem)) from None
    return path, fd


def _setup_logging(options: DaemonOptions,
                   opened: tuple[str, int] | None) -> logging.Handler | None:
    """Log to the file opened by _open_logfile; truncated now unless -r (the pidfile is held,
    so a second daemon never empties the first one's log)."""
    root = logging.getLogger()
    root.handlers.clear()
    if opened is None:
        logging.disable(logging.CRITICAL)
        return None
    root.setLevel(LEVELS[options.level])
    # The format shows none of these; not gathering them for every record is the logging
    # HOWTO's "Optimization" advice, and a burst of starts writes hundreds of records.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    path, fd = opened
    if not options.append:
        os.ftruncate(fd, 0)
    handler = SafeFileHandler(path, fd)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    if options.foreground:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(console)
    return handler


def _drop_privileges(user: pwd.struct_passwd | None, gid: int | None) -> None:
    """Become *user* and *gid* for good. Nothing is chowned: what the daemon needs is
    created after this, by that user."""
    group = gid if gid is not None else os.getgid()
    if user is not None:
        os.setgroups(os.getgrouplist(user.pw_name, group))
    else:
        os.setgroups([group])
    os.setgid(group)
    if user is not None:
        os.setuid(user.pw_uid)
        os.environ.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)


def _check_interpreter() -> None:
    """After switching users: can this user still import what mirrord imports while it runs
    (the standard library, mirror itself, the plugins' packages)?

    Raises:
        StartupError: naming the directory that cannot be read.
    """
    import mirror

    places = [os.path.dirname(os.__file__), os.path.dirname(os.path.abspath(mirror.__file__))]
    places += [os.path.dirname(os.path.dirname(spec.origin)) for spec in map(
        importlib.util.find_spec, ("smtplib", "prometheus_client")) if spec and spec.origin]
    for place in places:
        if not os.access(place, os.R_OK | os.X_OK):
            raise StartupError(_(
                "as uid {uid}, Python's files in {path} cannot be read, and mirrord imports "
                "from there while it runs; install mirror with a Python that user can read "
                "(for example Debian's python3), or start without -u").format(
                    uid=os.getuid(), path=place))


def preload_plugins(config: MirrorConfig) -> list[EntryPointLike]:
    """Find the plugins and import their modules now, while the interpreter's files are
    surely readable; their threads start after detaching. A plugin that fails to import
    is reported when the plugins are enabled."""
    entries = list(discover())
    for entry in entries:
        section = config.plugins.get(entry.name.lower())
        if section is None or section.enabled:
            with contextlib.suppress(Exception):
                entry.load()
    return entries


def run_daemon(location: ConfigLocation, config: MirrorConfig, options: DaemonOptions) -> int:
    """Check, set up and run the daemon until it stops.

    Root does as little as it can: it reads the config, opens the daemon's log
    safely, imports what the daemon needs, and switches users (-u, -g). The
    pidfile, the state, the task logs and the control socket are all created and
    opened afterwards, by the daemon's user. docs/daemon.md ("Trust") says more.

    Returns:
        0 after a clean stop.

    Raises:
        StartupError: the daemon cannot start; nothing has been left running.
        AlreadyRunning: another daemon holds the pidfile.
    """
    try:
        handover = Handover.take(os.environ)  # set when an older image executed this one
    except HandoverError as problem:
        raise StartupError(str(problem)) from None
    if handover is None:
        return _run_daemon(location, config, options, None, None)
    # After an exec the terminal is long gone: the daemon log says what stops this image.
    opened = None if handover.log is None else (handover.log_path or "", handover.log)
    handler = _setup_logging(dataclasses.replace(options, append=True), opened)
    try:
        return _run_daemon(location, config, options, handover, handler)
    except (StartupError, AlreadyRunning) as problem:
        log.critical("the new image of mirrord cannot start: %s; the syncs it had go on "
                     "unattended, and the next mirrord started adopts them", problem)
        raise


def _run_daemon(location: ConfigLocation, config: MirrorConfig, options: DaemonOptions,
                handover: Handover | None, handler: logging.Handler | None) -> int:
    """:func:`run_daemon`, after a *handover* from an older image (whose log *handler* is
    set up already) or for an ordinary start (both None)."""
    if config.errors:
        raise StartupError(_("the config has {count} errors; mirrord does not start").format(
            count=len(config.errors)))
    start_cwd = handover.cwd if handover else _current_directory()
    # After an exec the users are switched already, as the first image left them.
    user, gid = (None, None) if handover else _user_and_group(options)
    switching = user is not None or gid is not None
    pidfile = pidfile_path(location, options.pidfile)
    paths = DaemonPaths(pidfile=pidfile, socket=socket_path(pidfile),
                        statefile=config.general.statefile or default_statefile(location))
    if len(paths.socket.encode()) > MAX_SOCKET_PATH:
        raise StartupError(_("the control socket path {path} is longer than {limit} bytes; "
                             "put the pidfile somewhere shorter with -P").format(
                                 path=paths.socket, limit=MAX_SOCKET_PATH))
    detacher = None if options.foreground or handover else _import_detacher()
    entries = preload_plugins(config)
    opened = None if handover else _open_logfile(options, user.pw_uid if user else None)
    if switching and handover is None:
        try:
            _drop_privileges(user, gid)
        except OSError as problem:  # e.g. no CAP_SETUID/CAP_SETGID in a hardened unit
            raise StartupError(_("cannot switch to the user and group of -u and -g: "
                                 "{reason} (mirrord needs root's capabilities for that)")
                               .format(reason=problem.strerror or problem)) from None
        _check_interpreter()
    _ensure_directory(os.path.dirname(pidfile), _("pidfile directory"),
                      _("choose another pidfile with -P"))
    _ensure_directory(os.path.dirname(paths.statefile), _("state directory"),
                      _("set statefile in [general]"))
    _ensure_directory(config.general.logdir, _("task log directory"), _("set logdir in [general]"))
    lock = PidFile(pidfile)
    state_lock = PidFile(paths.statefile + LOCK_SUFFIX)
    signals: SignalPipe | None = None
    try:
        if handover is not None:
            lock.adopt(handover.pidfile)
            state_lock.adopt(handover.state_lock)
        else:
            _acquire(lock, _("pidfile"))
        try:
            if handover is None:
                _acquire(state_lock, _("state file lock"))
        except AlreadyRunning as other:
            raise StartupError(_(
                "the state file {path} is in use by another mirrord (pid {pid}); give each "
                "daemon its own statefile in [general]").format(
                    path=paths.statefile, pid=other.pid if other.pid is not None else "?")) \
                from None
        if handover is None:
            handler = _setup_logging(options, opened)
            opened = None  # the handler owns the descriptor now
        raise_nofile_limit()  # a flood of clients must never take a sync's descriptors
        zone = local_zone()
        try:
            daemon = MirrorDaemon(location, config, paths, zone)
        except StateFileError as problem:
            raise StartupError(str(problem)) from None
        if handover is not None:
            daemon.expected_state_digest = handover.state_digest
            daemon.handed_children = handover.children
            daemon.handed_ending_groups = handover.ending_groups
        _note_old_default_state(config, paths.statefile)
        # Before the socket and the pidfile exist: a reload or stop sent as soon as they
        # appear must reach the loop, not end the daemon by the default action.
        signals = SignalPipe()
        try:
            if handover is not None:
                daemon.control.adopt(adopt_socket(handover.control))
            else:
                daemon.control.bind()
        except HandoverError as problem:
            raise StartupError(str(problem)) from None
        except OSError as problem:
            raise StartupError(_("cannot create the control socket {path}: {reason}").format(
                path=paths.socket, reason=problem.strerror or problem)) from None
        if handover is not None:
            log.info("mirrord executed again (pid %d): the new code and config take over",
                     os.getpid())
        for issue in config.warnings:
            log.warning("%s", issue)
        if detacher is None:
            os.umask(0o022)
            os.chdir("/")
        else:
            detacher([fd for fd in (lock.fd, state_lock.fd, daemon.control.sock.fileno()
                                    if daemon.control.sock else None, _stream_fd(handler),
                                    *signals.descriptors())
                      if fd is not None])
        if handover is None:
            lock.write(os.getpid())
            state_lock.write(os.getpid())
        become_subreaper()

        def handover_now() -> Handover:
            children, ending_groups = daemon.handover_runs()
            return Handover(pid=os.getpid(), control=daemon.control.fileno(),
                            pidfile=_held(lock), state_lock=_held(state_lock),
                            log=_stream_fd(handler), log_path=getattr(handler, "path", None),
                            cwd=start_cwd, state_digest=daemon.handover_digest,
                            children=children, ending_groups=ending_groups)

        daemon.restarter = Restarter(image_argv(), start_cwd, handover_now)
        daemon.load_plugins(entries)
        profiler = None
        if options.profile:
            import cProfile

            profiler = cProfile.Profile()
        if profiler:
            profiler.enable()
        try:
            daemon.serve(signals.read_fd, signals.drain)
        except Exception:
            log.critical("mirrord failed", exc_info=True)
            raise
        finally:
            if profiler:
                profiler.disable()
                target = os.path.join(os.path.dirname(pidfile), PROFILE_NAME)
                profiler.dump_stats(target)
                log.info("profile written to %s", target)
    finally:
        if signals is not None:
            signals.close()
        if opened is not None:
            os.close(opened[1])
        state_lock.release()
        lock.release()
    return 0


def _held(lock: PidFile) -> int:
    """The descriptor of a lock this process holds."""
    assert lock.fd is not None, "acquired or adopted"
    return lock.fd


def _current_directory() -> str:
    """Where mirrord was started (``python -m mirror`` imports from there), or / when that
    directory is gone."""
    try:
        return os.getcwd()
    except OSError:
        return "/"


def _acquire(lock: PidFile, what: str) -> None:
    """Take *lock*; AlreadyRunning passes through, anything else is a StartupError."""
    try:
        lock.acquire()
    except OSError as problem:
        reason = problem if isinstance(problem, UnsafePath) else problem.strerror or problem
        raise StartupError(_("cannot create the {what} {path}: {reason}").format(
            what=what, path=lock.path, reason=reason)) from None


def _note_old_default_state(config: MirrorConfig, statefile: str) -> None:
    """Before 0.9 every daemon without ``statefile`` used state.json: say where its history
    went when this daemon's own default is new (docs/daemon.md, "Upgrading")."""
    old = os.path.join(os.path.dirname(statefile), STATEFILE_NAME)
    if config.general.statefile or old == statefile or os.path.exists(statefile) \
            or not os.path.exists(old):
        return
    log.warning("this config's state file is now %s; %s may hold its earlier history "
                "(move it there while no daemon runs, if it was this config's)", statefile, old)


def _stream_fd(handler: logging.Handler | None) -> int | None:
    stream = getattr(handler, "stream", None)
    return stream.fileno() if stream is not None else None


def _import_detacher() -> Callable[[list[int]], None]:
    """python-daemon, imported now (as root: after a switch of users the interpreter's files
    may be unreadable), and the function that detaches with it.

    Raises:
        StartupError: python-daemon is not installed or cannot be imported.
    """
    try:
        # python-daemon, which has no type information
        import daemon  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as problem:
        raise StartupError(_("cannot import python-daemon, needed to detach: {reason} "
                             "(install it, or use -D)").format(reason=problem)) from None

    def detach(keep: list[int]) -> None:
        """Become a background daemon: fork twice, setsid, umask 022, chdir /, stdio to
        /dev/null, every descriptor but *keep* closed."""
        context = daemon.DaemonContext(working_directory="/", umask=0o022, detach_process=True,
                                       files_preserve=keep, signal_map={})
        context.open()

    return detach

