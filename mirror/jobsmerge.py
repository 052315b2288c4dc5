# SPDX-License-Identifier: GPL-3.0-or-later
"""``mirror-merge-jobs``: one tunasync ``/jobs`` feed for mirror-web from several hosts.

mirror-web reads one URL. On a site with several mirrord hosts, run this from a timer: it
fetches each host's ``/jobs``, merges them, and writes one JSON array atomically where the web
server serves it (docs/fleet.md). Each entry gains ``"server"``: the host (``HOST:PORT``) it
came from.

* A mirror on several hosts appears once: the copy with the latest ``last_update_ts`` (the
  freshest), the first host listed on a tie.
* A host that cannot be read is reported on stderr and the exit status is 1, but its entries
  from the previous output file are kept, so a host's blip does not empty the page. Entries of
  hosts no longer listed are dropped.
* What a host sends is not trusted: at most MAX_FEED_BYTES, a JSON array of objects, each with
  a string ``name``; anything else rejects that host's feed, never the others.
"""
from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mirror.atomicfile import write_atomically
from mirror.i18n import _, translate_standard_library

MAX_FEED_BYTES = 16 * 1024 * 1024
DEFAULT_TIMEOUT = 10.0
Job = dict[str, Any]


class FeedError(Exception):
    """A host's feed could not be used; the message says why."""


@dataclass(frozen=True)
class Source:
    """One host's ``/jobs`` URL and the name its entries carry."""

    url: str
    server: str


def parse_source(text: str) -> Source:
    """A command-line URL: ``http://HOST:PORT/jobs`` or ``https://…``.

    Raises:
        argparse.ArgumentTypeError: not an http or https URL with a host.
    """
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            _("'{text}' is not an http:// or https:// URL of a host's /jobs, "
              "e.g. http://mirror1.example.org:8000/jobs").format(text=text))
    return Source(text, parts.netloc)


def parse_timeout(text: str) -> float:
    """Seconds to wait for each host: a positive number.

    Raises:
        argparse.ArgumentTypeError: not a positive number.
    """
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            _("'{text}' is not a positive number of seconds").format(text=text))
    return value


def fetch_feed(source: Source, timeout: float) -> list[Job]:
    """The jobs *source* serves now.

    Raises:
        FeedError: the host did not answer, answered an HTTP error, sent more than
            MAX_FEED_BYTES, or sent something other than an array of jobs.
    """
    try:
        with urllib.request.urlopen(source.url, timeout=timeout) as response:
            body = response.read(MAX_FEED_BYTES + 1)
    except urllib.error.HTTPError as problem:
        raise FeedError(_("HTTP {code} {reason}").format(code=problem.code,
                                                          reason=problem.reason)) from None
    except (urllib.error.URLError, OSError) as problem:
        reason = getattr(problem, "reason", problem)
        raise FeedError(_("cannot fetch it: {reason}").format(reason=reason)) from None
    if len(body) > MAX_FEED_BYTES:
        raise FeedError(_("more than {count} bytes").format(count=MAX_FEED_BYTES))
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise FeedError(_("not JSON")) from None
    return checked_jobs(document)


def checked_jobs(document: object) -> list[Job]:
    """*document* as a list of jobs.

    Raises:
        FeedError: not an array of objects that each have a string ``name``.
    """
    if not isinstance(document, list):
        raise FeedError(_("not a JSON array of jobs"))
    for index, job in enumerate(document):
        if not isinstance(job, dict) or not isinstance(job.get("name"), str):
            raise FeedError(_("entry {index} is not a job (an object with a string 'name')")
                            .format(index=index))
    return document


def previous_jobs(path: str | None) -> list[Job]:
    """The jobs in the last output (empty when there is none or it cannot be read)."""
    if path is None:
        return []
    try:
        with open(path, "rb") as handle:
            return checked_jobs(json.loads(handle.read(MAX_FEED_BYTES + 1)))
    except (OSError, ValueError, RecursionError, FeedError):
        return []


def merge(feeds: Iterable[tuple[str, list[Job]]]) -> list[Job]:
    """One job per name from *feeds* (pairs of server and jobs, in the order listed): the
    freshest, each marked with its server; sorted by name."""
    chosen: dict[str, Job] = {}
    for server, jobs in feeds:
        for job in jobs:
            entry = {**job, "server": server}
            current = chosen.get(job["name"])
            if current is None or _freshness(entry) > _freshness(current):
                chosen[job["name"]] = entry
    return [chosen[name] for name in sorted(chosen)]


def _freshness(job: Job) -> float:
    stamp = job.get("last_update_ts")
    return float(stamp) if isinstance(stamp, (int, float)) and stamp == stamp else -1.0


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``mirror-merge-jobs``."""
    parser = argparse.ArgumentParser(
        prog="mirror-merge-jobs",
        description=_("Merge the /jobs feeds of several mirrord hosts into one for "
                      "mirror-web."))
    parser.add_argument("urls", metavar="URL", nargs="+", type=parse_source,
                        help=_("a host's /jobs, e.g. http://mirror1.example.org:8000/jobs"))
    parser.add_argument("-o", "--output", metavar="FILE",
                        help=_("write the merged feed here, atomically (default: stdout); "
                               "its entries stand in for a host that cannot be read"))
    parser.add_argument("--timeout", type=parse_timeout, default=DEFAULT_TIMEOUT,
                        metavar="SECONDS",
                        help=_("how long to wait for each host (default {seconds:g})")
                        .format(seconds=DEFAULT_TIMEOUT))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0, or 1 when a host could not be read (the rest is written)."""
    translate_standard_library()  # argparse's own messages, such as "usage:"
    args = build_parser().parse_args(argv)
    kept: dict[str, list[Job]] = {}
    for job in previous_jobs(args.output):
        if isinstance(job.get("server"), str):
            kept.setdefault(job["server"], []).append(job)
    feeds, status = [], 0
    for source in args.urls:
        try:
            feeds.append((source.server, fetch_feed(source, args.timeout)))
        except FeedError as problem:
            status = 1
            old = kept.get(source.server, [])
            print(_("mirror-merge-jobs: {url}: {problem}; keeping its {count} entries from "
                    "the last merge").format(url=source.url, problem=problem, count=len(old)),
                  file=sys.stderr)
            feeds.append((source.server, old))
    text = json.dumps(merge(feeds), indent=1, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            write_atomically(args.output, text)
        except OSError as problem:
            print(_("mirror-merge-jobs: cannot write {path}: {reason}").format(
                path=args.output, reason=problem.strerror or problem), file=sys.stderr)
            return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
