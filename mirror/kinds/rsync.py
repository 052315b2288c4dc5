# SPDX-License-Identifier: GPL-3.0-or-later
"""The rsync kind: a mirror synced with rsync(1), in one stage or two, from one of its upstreams.

Its keys, its options, the argv of each stage (never passed through a shell: the source and
the destination always follow ``--``), the upstream forms it accepts, and rsync's exit codes.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from mirror.checkfiles import MAX_CHECK_BYTES
from mirror.durations import parse_duration
from mirror.i18n import _
from mirror.kinds.base import (
    KindParts,
    TaskKind,
    TaskOptions,
    args_setting,
    command_setting,
    localdir_setting,
    parse_text,
)
from mirror.pluginsettings import Setting
from mirror.tracefile import TRACE_DIRECTORY, TRACES_LIST
from mirror.values import (
    check_rsyncdir,
    check_subdirectory,
    local_host_name,
    option_like_part,
    parse_bool,
    parse_words,
)

if TYPE_CHECKING:
    from mirror.kinds.sectionvalues import TaskValues
    from mirror.task import Stage, TaskSpec

DEFAULT_RSYNC_ARGS = "--links --hard-links --times --verbose --delete --recursive --stats"
RSYNC_VANISHED = 24

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


def _partition_options(args: tuple[str, ...], names: set[str],
                       valued: set[str]) -> tuple[list[str], list[str]]:
    """*args* as (the options named in *names*, the rest), in order. An option in *valued*
    given without ``=`` takes the next word with it (``--port 8873``)."""
    named: list[str] = []
    rest: list[str] = []
    into_named = False
    value_follows = False
    for arg in args:
        if not value_follows:
            name = arg.split("=", 1)[0]
            into_named = name in names
            value_follows = into_named and name in valued and "=" not in arg
        else:
            value_follows = False
        (named if into_named else rest).append(arg)
    return named, rest


def _without_deletes(args: tuple[str, ...]) -> list[str]:
    return _partition_options(args, _DELETING, _TAKES_VALUE)[1]


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


def _rsync_words(text: str) -> tuple[str, ...]:
    """``args`` and ``exclude``: shell-split words without a bare ``--``."""
    words = parse_words(text)
    if END_OF_OPTIONS in words:
        raise ValueError(_("a bare '--' ends rsync's options early, and mirrord puts one before "
                           "the source and destination itself; remove it"))
    return words


def _rsyncdir(text: str) -> str:
    check_rsyncdir(text)
    return text


def _checkfile(text: str) -> str:
    """A file inside rsyncdir (``project/trace/master``): relative, without ``..``, no part
    starting with ``-``, no blank or wildcard (an rsync daemon would expand one).

    Raises:
        ValueError: it is anything else; the message says what is allowed.
    """
    odd = next((character for character in text if character.isspace() or character in "*?[]\\"),
               None)
    if odd is not None:
        raise ValueError(_("'{path}' holds {character!r}, which rsync would read as a pattern "
                           "or a separator; name one file, e.g. project/trace/master").format(
                               path=text, character=odd))
    parts = text.split("/")
    if text.startswith("/") or ".." in parts:
        raise ValueError(_("'{path}' is not a file inside rsyncdir: give a relative path "
                           "without '..', e.g. project/trace/master").format(path=text))
    if text.endswith("/"):
        raise ValueError(_("'{path}' is a directory; name the file that changes with every "
                           "update, e.g. project/trace/master").format(path=text))
    part = option_like_part(text)
    if part is not None:
        raise ValueError(_("'{path}' is not a file inside rsyncdir: '{part}' starts with '-', "
                           "which rsync could read as an option").format(path=text, part=part))
    return text


UPSTREAMS = Setting(
    "upstream[]", parse_text, "", "where to sync from, one line per upstream",
    required=lambda: _("one line per upstream: a host, an rsync://host/module/ URL, or a "
                       "local path"))
COMMAND = command_setting("rsync", "the rsync program")
RSYNCDIR = Setting("rsyncdir", _rsyncdir, "", "the module and path on the upstream",
                   required=lambda: _("the module and path on the upstream, e.g. debian/"))
LOCALDIR = localdir_setting(True, "the directory the mirror is written to")
ARGS = args_setting(DEFAULT_RSYNC_ARGS, "rsync's options", _rsync_words)
EXCLUDE = Setting[tuple[str, ...]]("exclude", _rsync_words, (), "more rsync options, after args")
TWOSTAGE = Setting("twostage", parse_bool, False, "sync in two stages")
CHECKFILE = Setting[Optional[str]](
    "checkfile", _checkfile, None,
    "a file of rsyncdir that changes with every upstream update; unchanged: no sync")
TRACE = Setting("trace", parse_bool, False, "write a Debian trace file after each sync")
CONTIMEOUT = Setting("contimeout", parse_duration, 0,
                     "give up connecting to an rsync daemon after this long; 0: rsync's default")
FIRSTSTAGE = Setting[Optional[str]]("firststage", parse_text, None,
                                    "the directory inside rsyncdir synced first")


@dataclass(frozen=True)
class RsyncOptions(TaskOptions):
    """An rsync task's own values (its upstreams and localdir are the TaskSpec's)."""

    KIND = "rsync"
    command: str
    rsyncdir: str
    args: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    twostage: bool = False
    firststage: str | None = None
    checkfile: str | None = None
    trace_name: str | None = None  # the trace file's name (a host name) when trace = 1
    contimeout: int = 0


def stage_argvs(task: TaskSpec, upstream_index: int = 0) -> list[list[str]]:
    """The argv of each stage of an rsync task, in order (one list, or two when two-stage).

    A stage is ``COMMAND ARGS EXCLUDES -- SOURCE/ DESTINATION``: the ``--`` ends rsync's
    options, so the source and the destination are never read as options, whatever they
    look like.

    Args:
        task: an rsync task.
        upstream_index: which ``upstream[]`` entry to sync from; it wraps around.

    Returns:
        ``[[argv]]`` or ``[[stage-1 argv], [stage-2 argv]]``; argv[0] is the resolved command.

    Raises:
        TypeError: *task* is not an rsync task.
    """
    options = KIND.options(task)
    upstream = task.upstreams[upstream_index % len(task.upstreams)]
    source = rsync_source(upstream, options.rsyncdir)
    localdir = task.localdir or ""
    command, args = options.command, options.args
    exclude = (*options.exclude, *_added_options(options, upstream))
    if not options.twostage:
        return [[command, *args, *exclude, END_OF_OPTIONS, f"{source}/", localdir]]
    first = (options.firststage or "").strip("/")
    stage1 = [command, *_without_deletes(args), *exclude, END_OF_OPTIONS,
              f"{source}/{first}/", os.path.join(localdir, first)]
    stage2 = [command, *_deleting_after(args), *exclude, END_OF_OPTIONS, f"{source}/", localdir]
    return [stage1, stage2]


def is_daemon_upstream(upstream: str) -> bool:
    """Whether rsync reaches *upstream* as an rsync daemon (``rsync://``; a bare host is
    ``host::module``), the only case where ``--contimeout`` applies."""
    return not upstream.startswith("/")


def _contimeout(options: RsyncOptions, upstream: str) -> list[str]:
    """``--contimeout=N`` when the task sets it and rsync connects to a daemon."""
    if options.contimeout and is_daemon_upstream(upstream):
        return [f"--contimeout={options.contimeout}"]
    return []


def _added_options(options: RsyncOptions, upstream: str) -> list[str]:
    """What mirrord adds after ``args`` and ``exclude`` (nothing unless a key asks for it,
    so that 0.8.4's argv stays as it was): ``--contimeout``, and filters that keep the trace
    files out of every deletion."""
    added = _contimeout(options, upstream)
    if options.trace_name:
        added += [f"--filter=protect /{TRACE_DIRECTORY}/{options.trace_name}",
                  f"--filter=protect /{TRACE_DIRECTORY}/{TRACES_LIST}"]
    return added


def check_argv(task: TaskSpec, upstream_index: int, destination: str) -> list[str]:
    """The argv that fetches *task*'s checkfile from one upstream to *destination* (a private
    file of mirrord's): only that file, at most MAX_CHECK_BYTES.

    Raises:
        TypeError: *task* is not an rsync task.
        ValueError: it has no checkfile.
    """
    options = KIND.options(task)
    if not options.checkfile:
        raise ValueError(_("{name} has no checkfile").format(name=task.name))
    upstream = task.upstreams[upstream_index % len(task.upstreams)]
    source = rsync_source(upstream, options.rsyncdir)
    return [options.command, *transport_options(options.args), "--no-motd",
            f"--max-size={MAX_CHECK_BYTES}", *_contimeout(options, upstream), END_OF_OPTIONS,
            f"{source}/{options.checkfile}", destination]


# The options of args that say how to reach the upstream, not what to copy: the checkfile's
# fetch keeps them (a password file, another port, ssh's command line, an address family).
_TRANSPORT = {"--password-file", "--port", "--rsh", "-e", "--address", "--sockopts",
              "--ipv4", "--ipv6", "-4", "-6", "--timeout", "--contimeout", "--protocol",
              "--blocking-io", "--no-blocking-io", "--rsync-path", "--bwlimit"}
_TRANSPORT_VALUE = {"--password-file", "--port", "--rsh", "-e", "--address", "--sockopts",
                    "--timeout", "--contimeout", "--protocol", "--rsync-path", "--bwlimit"}


def transport_options(args: tuple[str, ...]) -> list[str]:
    """The options of *args* that say how to reach the upstream (``--port=8873``,
    ``-e "ssh -p 2222"``, ``--password-file=…``, ``-4``…), with their values."""
    return _partition_options(args, _TRANSPORT, _TRANSPORT_VALUE)[0]


# rsync(1), EXIT VALUES.
RSYNC_MESSAGES = {
    0: "Success",
    1: "Syntax or usage error",
    2: "Protocol incompatibility",
    3: "Errors selecting input/output files, dirs",
    4: "Requested action not supported",
    5: "Error starting client-server protocol",
    6: "Daemon unable to append to log-file",
    10: "Error in socket I/O",
    11: "Error in file I/O",
    12: "Error in rsync protocol data stream",
    13: "Errors with program diagnostics",
    14: "Error in IPC code",
    20: "Received SIGUSR1 or SIGINT",
    21: "Some error returned by waitpid()",
    22: "Error allocating core memory buffers",
    23: "Partial transfer due to error",
    24: "Partial transfer due to vanished source files",
    25: "The --max-delete limit stopped deletions",
    30: "Timeout in data send/receive",
    35: "Timeout waiting for daemon connection",
}


class RsyncKind(TaskKind[RsyncOptions]):
    """``type = rsync`` (the default)."""

    name = "rsync"
    rank = 0
    settings = (
        UPSTREAMS, COMMAND, RSYNCDIR, LOCALDIR, ARGS, EXCLUDE, TWOSTAGE, FIRSTSTAGE, CHECKFILE,
        TRACE, CONTIMEOUT)
    options_type = RsyncOptions
    success_codes = (RSYNC_VANISHED,)  # some source files vanished during the transfer

    def build(self, values: TaskValues) -> KindParts | None:
        """Resolve the command, make the local paths absolute and check the upstreams."""
        upstreams = values.each(UPSTREAMS, lambda text: _checked_upstream(values, text))
        twostage = values.get(TWOSTAGE)
        if twostage:
            values.require(FIRSTSTAGE, _("twostage is on: name the directory synced first, "
                                         "e.g. pool"), check_subdirectory)
        command = values.command(COMMAND)
        localdir = values.path(LOCALDIR)
        if command is None:
            return None
        options = RsyncOptions(command=command, rsyncdir=values.get(RSYNCDIR),
                               args=values.get(ARGS), exclude=values.get(EXCLUDE),
                               twostage=twostage,
                               firststage=values.get(FIRSTSTAGE) if twostage else None,
                               checkfile=values.get(CHECKFILE),
                               trace_name=_trace_name(values),
                               contimeout=values.get(CONTIMEOUT))
        return KindParts(options, upstreams, localdir)

    def check_stage(self, spec: TaskSpec, upstream_index: int, destination: str
                    ) -> Stage | None:
        """The fetch of ``checkfile`` (None without one)."""
        from mirror.task import Stage, StageRole

        if not self.checkfile(spec):
            return None
        return Stage(tuple(check_argv(spec, upstream_index, destination)), role=StageRole.CHECK)

    def stages(self, spec: TaskSpec, upstream_index: int, log_path: str) -> list[Stage]:
        from mirror.task import Stage

        return [Stage(tuple(argv)) for argv in stage_argvs(spec, upstream_index)]

    def checkfile(self, spec: TaskSpec) -> str | None:
        """``checkfile``, relative to rsyncdir."""
        return self.options(spec).checkfile

    def trace_name(self, spec: TaskSpec) -> str | None:
        """This host's name when ``trace = 1``."""
        return self.options(spec).trace_name

    def directories(self, spec: TaskSpec) -> tuple[str, ...]:
        """The localdir: rsync creates only the last directory of a destination."""
        return (spec.localdir,) if spec.localdir else ()

    def route(self, spec: TaskSpec) -> str:
        """``SOURCE/ (+N more) → LOCALDIR``."""
        options = self.options(spec)
        more = len(spec.upstreams) - 1
        source = rsync_source(spec.upstreams[0], options.rsyncdir) + "/"
        extra = _(" (+{count} more)").format(count=more) if more else ""
        return f"{source}{extra} → {spec.localdir}"

    def result_message(self, exit_code: int) -> str:
        return RSYNC_MESSAGES.get(exit_code, f"rsync exited with code {exit_code}")


def _trace_name(values: TaskValues) -> str | None:
    """The trace file's name when ``trace = 1``; this host's own name is looked up now, not
    when the first trace is written by the loop."""
    if not values.get(TRACE):
        return None
    local_host_name()
    return values.trace_host()


def _checked_upstream(values: TaskValues, text: str) -> str:
    """An ``upstream[]`` line: ``./`` and ``../`` paths made absolute, then checked."""
    if text.startswith(("./", "../")):  # a local tree beside the config file
        text = values.absolute(text)
    check_upstream(text)
    return text


KIND = RsyncKind()
