# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``mirrord`` command line: argument parsing, client commands and exit codes.

Exit codes: 0 success, 1 the config or the request failed (or no daemon runs),
2 bad usage. Daemon logic lives in mirror.daemon and mirror.lifecycle.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime

from mirror import __version__
from mirror.i18n import _, translate_standard_library

EXIT_OK = 0
EXIT_ERRORS = 1
# Set by a running mirrord that tries this code before -s restart executes it (mirror.reexec).
PREFLIGHT_VARIABLE = "MIRRORD_PREFLIGHT"
LEVEL_CHOICES = ("none", "debug", "info", "warning", "error", "critical")


def parse_since(text: str) -> datetime:
    """Read ``--since``: ISO-8601, with an offset or ``Z``; without one it is local time.

    Raises:
        argparse.ArgumentTypeError: not an ISO-8601 time.
    """
    from mirror.localzone import local_zone

    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(_(
            "'{text}' is not an ISO-8601 time (e.g. 2026-03-08T01:30, "
            "2026-03-08T01:30:00+08:00 or 2026-03-08T01:30:00Z)").format(text=text)) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local_zone())
    return moment


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``mirrord``."""
    parser = argparse.ArgumentParser(
        prog="mirrord",
        description=_("Keep an open-source mirror site in sync with its upstreams. Without an "
                      "action, start the daemon."),
    )
    parser.add_argument("-v", "--version", action="version", version=f"mirrord {__version__}",
                        help=_("print the version and exit"))
    parser.add_argument("-c", "--config", metavar="DIR|FILE",
                        help=_("config directory (holding mirror.ini and plugin.ini) or the "
                               "mirror.ini file; default /etc/mirror, else "
                               "$XDG_CONFIG_HOME/mirror"))
    parser.add_argument("-P", "--pidfile", metavar="PIDFILE",
                        help=_("pidfile; the control socket mirrord.sock sits beside it "
                               "(default: mirrord.pid in the config directory)"))
    actions = parser.add_argument_group(_("actions (at most one; none starts the daemon)"))
    chosen = actions.add_mutually_exclusive_group()
    chosen.add_argument("--check", action="store_true",
                        help=_("check the config and show what would run when, then exit"))
    chosen.add_argument("-t", "--queue", action="store_true",
                        help=_("show the running daemon's queue in due order"))
    chosen.add_argument("--status", action="store_true",
                        help=_("show every task's state, last result and next run"))
    chosen.add_argument("--run", metavar="NAME", help=_("start task NAME now"))
    chosen.add_argument("--cancel", metavar="NAME", help=_("end task NAME's running sync"))
    chosen.add_argument("-s", "--signal", choices=("stop", "reload", "restart"),
                        help=_("stop the daemon (waiting until it has exited), reload its "
                               "config, or restart it in place with the code installed now "
                               "(running syncs carry on)"))
    modifiers = parser.add_argument_group(_("with an action"))
    modifiers.add_argument("--json", action="store_true",
                           help=_("with --check, -t or --status: print one JSON object"))
    modifiers.add_argument("--since", type=parse_since, metavar="ISO-8601",
                           help=_("with --check: compute next runs after this instant"))
    modifiers.add_argument("--wait", action="store_true",
                           help=_("with --run: wait until the run ends; exit 0 only on success"))
    daemon = parser.add_argument_group(_("daemon"))
    daemon.add_argument("-D", "--foreground", action="store_true",
                        help=_("stay in the foreground (for systemd)"))
    daemon.add_argument("-l", "--logfile", metavar="LOGFILE",
                        help=_("daemon log (default /var/log/mirrord/mirrord.log); reopened "
                               "when logrotate moves it"))
    daemon.add_argument("-L", "--loglevel", choices=LEVEL_CHOICES, default="info",
                        help=_("log level (default info)"))
    daemon.add_argument("-q", "--quiet", action="store_true", help=_("same as -L none"))
    daemon.add_argument("-r", "--append", action="store_true",
                        help=_("append to the log instead of truncating it"))
    daemon.add_argument("-u", "--user", help=_("when started as root, run as USER"))
    daemon.add_argument("-g", "--group", help=_("when started as root, run as GROUP"))
    daemon.add_argument("--profile", action="store_true",
                        help=_("write cProfile statistics beside the pidfile on exit"))
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.json and not (args.check or args.queue or args.status):
        parser.error(_("--json goes with --check, -t or --status"))
    if args.since and not args.check:
        parser.error(_("--since goes with --check"))
    if args.wait and not args.run:
        parser.error(_("--wait goes with --run"))


def run_check(config_option: str | None, as_json: bool, since: datetime | None) -> int:
    """Load the config, print the check report, and return the exit code."""
    from mirror.check import check_report, render_check
    from mirror.config import load_config, with_plugin_checks, with_run_advice
    from mirror.localzone import local_zone
    from mirror.locations import locate_config

    zone = local_zone()
    config = with_run_advice(with_plugin_checks(load_config(locate_config(config_option))))
    report = check_report(config, since or datetime.now(zone), zone)
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        print(render_check(config, report))
    return EXIT_ERRORS if config.errors else EXIT_OK


def preflight(args: argparse.Namespace) -> int:
    """What a running mirrord asks of the new code before ``-s restart`` executes it: load
    the config, import the daemon and the enabled plugins, and say so on stdout."""
    from mirror import __version__
    from mirror.config import load_config
    from mirror.lifecycle import preload_plugins
    from mirror.locations import locate_config
    from mirror.reexec import PREFLIGHT_MARK

    config = load_config(locate_config(args.config))
    for issue in config.errors:
        print(_("mirrord: error: {issue}").format(issue=issue), file=sys.stderr)
    if config.errors:
        return EXIT_ERRORS
    preload_plugins(config)
    print(PREFLIGHT_MARK, __version__)
    return EXIT_OK


def start_daemon(args: argparse.Namespace) -> int:
    """Load the config and run the daemon; problems before detaching exit 1 with a message."""
    from mirror.config import load_config
    from mirror.diagnostics import ERROR
    from mirror.lifecycle import DaemonOptions, StartupError, run_daemon
    from mirror.locations import locate_config
    from mirror.pidfile import AlreadyRunning

    location = locate_config(args.config)
    config = load_config(location)
    for issue in config.issues:
        if issue.severity == ERROR:
            print(_("mirrord: error: {issue}").format(issue=issue), file=sys.stderr)
        else:
            print(_("mirrord: warning: {issue}").format(issue=issue), file=sys.stderr)
    options = DaemonOptions(foreground=args.foreground, logfile=args.logfile,
                            level="none" if args.quiet else args.loglevel, append=args.append,
                            pidfile=args.pidfile, user=args.user, group=args.group,
                            profile=args.profile)
    try:
        return run_daemon(location, config, options)
    except (StartupError, AlreadyRunning) as problem:
        print(f"mirrord: {problem}", file=sys.stderr)
        return EXIT_ERRORS


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mirrord``; returns the exit code."""
    translate_standard_library()  # argparse's own messages, such as "usage:"
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)
    try:
        if args.check:
            return run_check(args.config, args.json, args.since)
        if args.queue or args.status or args.run or args.cancel or args.signal:
            from mirror.client import run_client

            return run_client(args)
        if os.environ.get(PREFLIGHT_VARIABLE):
            return preflight(args)
        return start_daemon(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (mirrord --check | head); stay quiet at exit too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
