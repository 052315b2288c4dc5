# SPDX-License-Identifier: GPL-3.0-or-later
"""The argv of each stage of a run, built from a TaskSpec. Never passed through a shell."""
from __future__ import annotations

import os
import re

from mirror.i18n import _
from mirror.task import SIMPLE, TaskSpec
from mirror.values import option_like_part, parse_words

# Every rsync option that deletes, or only matters when deleting. Stage 1 of a
# two-stage sync drops them all, so that nothing is removed before stage 2.
_DELETING = {
    "--del", "--delete", "--delete-before", "--delete-during", "--delete-delay",
    "--delete-after", "--delete-excluded", "--delete-missing-args", "--force",
    "--max-delete",
}
# Stage 2 turns these into --delete-after, so old files go only once every new
# file is in place.
_DELETE_TIMING = {"--del", "--delete", "--delete-before", "--delete-during", "--delete-delay"}
_TAKES_VALUE = {"--max-delete"}
# A user or host name never starts with "-": ssh and rsync would read it as an option.
_USER = r"(?:[A-Za-z0-9._%+][A-Za-z0-9._%+-]*@)?"
_HOSTNAME = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
_HOST = re.compile(_USER + _HOSTNAME)
_RSYNC_URL = re.compile(r"rsync://" + _USER + _HOSTNAME + r"(?::[0-9]+)?(?:/.*)?")
RSYNC_URL_PREFIX = "rsync://"
# Ends rsync's options: what follows is the source and the destination, whatever they look like.
END_OF_OPTIONS = "--"


def upstream_forms() -> str:
    """What an ``upstream[]`` value may be, in the user's language (for messages)."""
    return _("a host name (mirror.example.org), an rsync://host/module/ URL, an absolute path, "
             "or a path starting with ./ relative to the config file")


def _option_like(upstream: str) -> tuple[str, str] | None:
    """The part of a host or ``rsync://`` upstream that starts with ``-``, as
    ``("user" | "host" | "path", part)``, or None when there is none."""
    path = ""
    if upstream.startswith(RSYNC_URL_PREFIX):
        authority, _slash, path = upstream[len(RSYNC_URL_PREFIX):].partition("/")
    else:
        authority = upstream
    user, at, host = authority.rpartition("@")
    if not host.startswith("["):
        host = host.partition(":")[0]  # without the port
    if at and user.startswith("-"):
        return "user", user
    if host.startswith("-"):
        return "host", host
    part = option_like_part(path)
    return None if part is None else ("path", part)


def check_upstream(upstream: str) -> None:
    """Accept a host (``[user@]host``), an ``rsync://[user@]host[:port]/module/`` URL or an
    absolute local path (the loader has already made ``./`` and ``../`` paths absolute).

    No user name, host name or directory of a host or URL may start with ``-``, so that
    neither rsync nor the ssh it may start can read one as an option; a local path starts
    with ``/``.

    Raises:
        ValueError: *upstream* is none of them; the message says what is allowed.
    """
    if upstream.startswith("/"):
        return
    problem = _option_like(upstream)
    if problem is None and (_RSYNC_URL.fullmatch(upstream) or _HOST.fullmatch(upstream)):
        return
    forms = upstream_forms()
    if problem is None:
        raise ValueError(_("'{upstream}' is not an upstream (use {forms})").format(
            upstream=upstream, forms=forms))
    where, part = problem
    if where == "user":
        message = _("'{upstream}' is not an upstream: the user name '{part}' starts with '-', "
                    "which rsync and ssh would read as an option (a user name may not start "
                    "with '-'; use {forms})")
    elif where == "host":
        message = _("'{upstream}' is not an upstream: the host name '{part}' starts with '-', "
                    "which rsync and ssh would read as an option (a host name may not start "
                    "with '-'; use {forms})")
    else:
        message = _("'{upstream}' is not an upstream: '{part}' starts with '-', which rsync "
                    "could read as an option (a module or directory may not start with '-'; "
                    "use {forms})")
    raise ValueError(message.format(upstream=upstream, part=part, forms=forms))


def rsync_source(upstream: str, rsyncdir: str) -> str:
    """The source of a sync, without a trailing slash.

    ``host`` gives ``host::RSYNCDIR``, an ``rsync://`` URL gives ``URL/RSYNCDIR``,
    and a local path gives ``PATH/RSYNCDIR``.
    """
    directory = rsyncdir.strip("/")
    if upstream.startswith("/"):
        return os.path.join(upstream, directory).rstrip("/") or "/"
    if upstream.startswith(RSYNC_URL_PREFIX):
        return "/".join(part for part in (upstream.rstrip("/"), directory) if part)
    return f"{upstream}::{directory}"


def _without_deletes(args: tuple[str, ...]) -> list[str]:
    kept: list[str] = []
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
            continue
        name = arg.split("=", 1)[0]
        if name in _DELETING:
            skip_value = arg in _TAKES_VALUE
            continue
        kept.append(arg)
    return kept


def _deleting_after(args: tuple[str, ...]) -> list[str]:
    result: list[str] = []
    for arg in args:
        if arg in _DELETE_TIMING:
            arg = "--delete-after"
        if arg == "--delete-after" and arg in result:
            continue
        result.append(arg)
    if "--delay-updates" not in result:
        result.append("--delay-updates")
    return result


def stage_argvs(task: TaskSpec, upstream_index: int = 0) -> list[list[str]]:
    """The argv of each stage, in order (one list, or two for a two-stage task).

    An rsync stage is ``COMMAND ARGS EXCLUDES -- SOURCE/ DESTINATION``: the ``--``
    ends rsync's options, so the source and the destination are never read as
    options, whatever they look like. A simple stage is ``COMMAND ARGS`` (its
    arguments are the admin's to choose, options included).

    Args:
        task: the task.
        upstream_index: which ``upstream[]`` entry to sync from; it wraps around.

    Returns:
        ``[[argv]]`` or ``[[stage-1 argv], [stage-2 argv]]``; argv[0] is the
        resolved command.
    """
    if task.type == SIMPLE:
        final = [task.command, *task.args]
        if task.twostage:
            return [[task.command, *parse_words(task.firststage or "")], final]
        return [final]
    upstream = task.upstreams[upstream_index % len(task.upstreams)]
    source = rsync_source(upstream, task.rsyncdir)
    localdir = task.localdir or ""
    if not task.twostage:
        return [[task.command, *task.args, *task.exclude, END_OF_OPTIONS, f"{source}/",
                 localdir]]
    first = (task.firststage or "").strip("/")
    stage1 = [task.command, *_without_deletes(task.args), *task.exclude, END_OF_OPTIONS,
              f"{source}/{first}/", os.path.join(localdir, first)]
    stage2 = [task.command, *_deleting_after(task.args), *task.exclude, END_OF_OPTIONS,
              f"{source}/", localdir]
    return [stage1, stage2]
