# SPDX-License-Identifier: GPL-3.0-or-later
"""The argv of each stage of a run, built from a TaskSpec. Never passed through a shell."""
from __future__ import annotations

import os
import re

from mirror.i18n import _
from mirror.task import SIMPLE, TaskSpec
from mirror.values import parse_words

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
_USER = r"(?:[A-Za-z0-9._%+-]+@)?"
_HOST = re.compile(_USER + r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])")
_RSYNC_URL = re.compile(
    r"rsync://" + _USER + r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?(?:/.*)?")


def upstream_forms() -> str:
    """What an ``upstream[]`` value may be, in the user's language (for messages)."""
    return _("a host name (mirror.example.org), an rsync://host/module/ URL, an absolute path, "
             "or a path starting with ./ relative to the config file")


def check_upstream(upstream: str) -> None:
    """Accept a host, an ``rsync://`` URL or an absolute local path (the loader has already
    made ``./`` and ``../`` paths absolute).

    Raises:
        ValueError: *upstream* is none of them.
    """
    if upstream.startswith("/") or _RSYNC_URL.fullmatch(upstream) or _HOST.fullmatch(upstream):
        return
    raise ValueError(_("'{upstream}' is not an upstream (use {forms})").format(
        upstream=upstream, forms=upstream_forms()))


def rsync_source(upstream: str, rsyncdir: str) -> str:
    """The source of a sync, without a trailing slash.

    ``host`` gives ``host::RSYNCDIR``, an ``rsync://`` URL gives ``URL/RSYNCDIR``,
    and a local path gives ``PATH/RSYNCDIR``.
    """
    directory = rsyncdir.strip("/")
    if upstream.startswith("/"):
        return os.path.join(upstream, directory).rstrip("/") or "/"
    if upstream.startswith("rsync://"):
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
        return [[task.command, *task.args, *task.exclude, f"{source}/", localdir]]
    first = (task.firststage or "").strip("/")
    stage1 = [task.command, *_without_deletes(task.args), *task.exclude,
              f"{source}/{first}/", os.path.join(localdir, first)]
    stage2 = [task.command, *_deleting_after(task.args), *task.exclude, f"{source}/", localdir]
    return [stage1, stage2]
