# SPDX-License-Identifier: GPL-3.0-or-later
"""Converters for config values. Each takes the text and returns the value or raises ValueError.

The messages say what is allowed; the loader adds file, line, section and key.
"""
from __future__ import annotations

import functools
import math
import re
import shlex

from mirror.i18n import _

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,.][^@\s,]*")
_SEPARATORS = re.compile(r"[\s,]+")
TASK_NAME = re.compile(r"[A-Za-z0-9._-]+")


def parse_bool(text: str) -> bool:
    """``1/0``, ``yes/no``, ``true/false``, ``on/off`` (any case)."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(_("'{text}' is not a yes/no value (use 1 or 0, yes or no, true or false)")
                     .format(text=text))


def parse_non_negative_float(text: str) -> float:
    """A finite number ≥ 0, such as ``4`` or ``2.5``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(_("'{text}' is not a number ≥ 0 (e.g. 4.0; 0 means no limit)")
                         .format(text=text))
    return value


def parse_non_negative_int(text: str) -> int:
    """A whole number ≥ 0."""
    if not re.fullmatch(r"[0-9]+", text.strip()):
        raise ValueError(_("'{text}' is not a whole number ≥ 0 (0 means no limit)")
                         .format(text=text))
    return int(text)


def parse_int(text: str) -> int:
    """A whole number, possibly negative."""
    if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        raise ValueError(_("'{text}' is not a whole number").format(text=text))
    return int(text)


def split_list(text: str) -> list[str]:
    """Split a comma- or space-separated list, dropping empty items."""
    return [item for item in _SEPARATORS.split(text.strip()) if item]


def parse_ports(text: str) -> tuple[int, ...]:
    """A comma- or space-separated list of TCP ports 1-65535."""
    ports = []
    for item in split_list(text):
        if not re.fullmatch(r"[0-9]+", item) or not 1 <= int(item) <= 65535:
            raise ValueError(_("'{item}' is not a TCP port (use numbers 1-65535, "
                               "separated by commas, e.g. 80,443)").format(item=item))
        ports.append(int(item))
    return tuple(ports)


def parse_exit_codes(text: str) -> tuple[int, ...]:
    """A comma- or space-separated list of exit codes 0-255."""
    codes = []
    for item in split_list(text):
        if not re.fullmatch(r"[0-9]+", item) or int(item) > 255:
            raise ValueError(_("'{item}' is not an exit code (use numbers 0-255, separated by "
                               "commas, e.g. 23,24)").format(item=item))
        codes.append(int(item))
    return tuple(codes)


def parse_emails(text: str) -> tuple[str, ...]:
    """A comma- or space-separated list of e-mail addresses."""
    addresses = split_list(text)
    for address in addresses:
        if not _EMAIL.fullmatch(address):
            raise ValueError(_("'{address}' is not an e-mail address (use name@example.org, "
                               "several separated by commas)").format(address=address))
    return tuple(addresses)


def parse_words(text: str) -> tuple[str, ...]:
    """Split a value the way a POSIX shell splits words (quotes respected, nothing expanded)."""
    try:
        return tuple(shlex.split(text))
    except ValueError as error:
        raise ValueError(_("cannot split {text!r} into words: {reason} "
                           "(check that quotes are balanced)").format(text=text, reason=error)) \
            from None


def parse_absolute_path(text: str) -> str:
    """An absolute path (mirrord runs with / as its working directory).

    Raises:
        ValueError: a relative or empty path.
    """
    value = text.strip()
    if not value.startswith("/"):
        raise ValueError(_("'{text}' is not an absolute path (write it from /, e.g. "
                           "/var/lib/mirror/status.json)").format(text=text))
    return value


def option_like_part(path: str) -> str | None:
    """The first ``/``-separated part of *path* that starts with ``-``, or None.

    Such a part could be read as an option by rsync, by ssh or by an rsync
    daemon, so no directory in a source may have one.
    """
    return next((part for part in path.split("/") if part.startswith("-")), None)


def check_rsyncdir(path: str) -> None:
    """Accept the module and path on the upstream (``debian/``, ``pub/ubuntu``).

    Raises:
        ValueError: a part of *path* starts with ``-``.
    """
    part = option_like_part(path.strip())
    if part is not None:
        raise ValueError(_("'{path}' is not a module and path on the upstream: '{part}' starts "
                           "with '-', which rsync could read as an option (a module or "
                           "directory may not start with '-'; e.g. debian/)").format(
                               path=path, part=part))


def check_subdirectory(path: str) -> None:
    """Accept a relative directory that stays inside its parent (``pool``, ``a/b``).

    Raises:
        ValueError: *path* is absolute, climbs out with ``..``, or has a part
            that starts with ``-``.
    """
    parts = path.strip().strip("/").split("/")
    if path.strip().startswith("/") or ".." in parts or parts == [""]:
        raise ValueError(_("'{path}' is not a directory inside rsyncdir (use a relative path "
                           "such as pool)").format(path=path))
    part = option_like_part(path.strip())
    if part is not None:
        raise ValueError(_("'{path}' is not a directory inside rsyncdir: '{part}' starts with "
                           "'-', which rsync could read as an option (a directory may not "
                           "start with '-'; e.g. pool)").format(path=path, part=part))


def check_task_name(name: str) -> None:
    """Accept a name safe in file names: letters, digits, ``.``, ``_``, ``-``; not ``.`` or ``..``.

    Raises:
        ValueError: the name is not safe.
    """
    if not TASK_NAME.fullmatch(name) or name in {".", ".."}:
        raise ValueError(_("'{name}' is not a safe task name (use only letters, digits, "
                           "'.', '_' and '-'; it names the task's log files)").format(name=name))


_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")


def parse_host_name(text: str) -> str:
    """A host's DNS name (``mirror.example.org``): it names the trace file, so never a path.

    Raises:
        ValueError: it is not a host name.
    """
    if len(text) > 253 or not _HOST_NAME.fullmatch(text):
        raise ValueError(_("'{text}' is not a host name (letters, digits and '-' in labels "
                           "separated by '.', e.g. mirror.example.org)").format(text=text))
    return text


def parse_trace_value(text: str) -> str:
    """One line of text for a trace file field (``Maintainer``).

    Raises:
        ValueError: it holds a control character, which would break the file's lines.
    """
    if any(ord(character) < 32 or ord(character) == 127 for character in text):
        raise ValueError(_("'{text}' holds a control character; give one line of text, "
                           "e.g. Mirror Admins <mirror@example.org>").format(text=text))
    return text


def command_missing(name: str) -> str:
    """Why the command *name* (a path, or a name looked up on PATH) cannot be run."""
    if "/" in name:
        return _("'{name}' is not an executable file").format(name=name)
    return _("command '{name}' not found on PATH; install it or give its full path").format(
        name=name)


@functools.lru_cache(maxsize=1)
def local_host_name() -> str:
    """This host's fully qualified name (as ``hostname -f``), or its short name when that is
    not a host name. Looked up once (it may ask DNS): the config loader asks first, before
    the loop runs."""
    import socket

    for name in (socket.getfqdn(), socket.gethostname()):
        try:
            return parse_host_name(name)
        except ValueError:
            continue
    return "localhost"
