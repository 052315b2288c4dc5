# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``mirrord`` command line: argument parsing and exit codes, no daemon logic.

Exit codes: 0 success, 1 the config (or the request) has errors, 2 bad usage.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime

from mirror import __version__
from mirror.i18n import _

EXIT_OK = 0
EXIT_ERRORS = 1
EXIT_USAGE = 2


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
        description=_("Keep an open-source mirror site in sync with its upstreams."),
    )
    parser.add_argument("-v", "--version", action="version", version=f"mirrord {__version__}",
                        help=_("print the version and exit"))
    parser.add_argument("-c", "--config", metavar="DIR|FILE",
                        help=_("config directory (holding mirror.ini and plugin.ini) or the "
                               "mirror.ini file; default /etc/mirror, else "
                               "$XDG_CONFIG_HOME/mirror"))
    parser.add_argument("--check", action="store_true",
                        help=_("check the config and show what would run when, then exit"))
    parser.add_argument("--json", action="store_true",
                        help=_("with --check: print one JSON object instead of a table"))
    parser.add_argument("--since", type=parse_since, metavar="ISO-8601",
                        help=_("with --check: compute next runs after this instant instead of now"))
    return parser


def run_check(config_option: str | None, as_json: bool, since: datetime | None) -> int:
    """Load the config, print the check report, and return the exit code."""
    from mirror.check import check_report, render_check
    from mirror.config import load_config, locate_config
    from mirror.localzone import local_zone

    zone = local_zone()
    config = load_config(locate_config(config_option))
    report = check_report(config, since or datetime.now(zone), zone)
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        print(render_check(config, report))
    return EXIT_ERRORS if config.errors else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mirrord``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.json or args.since) and not args.check:
        parser.error(_("--json and --since go with --check"))
    if not args.check:
        parser.error(_("no action given: use --check to check a config "
                       "(see mirrord --help)"))
    try:
        return run_check(args.config, args.json, args.since)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (mirrord --check | head); stay quiet at exit too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
