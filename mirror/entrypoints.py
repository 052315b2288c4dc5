# SPDX-License-Identifier: GPL-3.0-or-later
"""Entry points of the installed distributions, read without importlib.metadata.

importlib.metadata imports the email package (for METADATA files), csv and more: about a
megabyte of a daemon's resident memory, only to read a few ``entry_points.txt`` files once at
start.

:func:`entry_points` reads them itself and gives the same answer as Python 3.10-3.13's
``importlib.metadata.entry_points(group=...)`` (Python 3.9's lists every copy of a
distribution; the scan keeps the first there too):

* the distributions are found the way its path finder finds them: each ``sys.path`` entry
  in order, each ``*.dist-info`` and ``*.egg-info`` in it in ``os.listdir`` order;
* a distribution is known by the name part of ``NAME-VERSION.dist-info``, normalized (PEP
  503, then ``-`` as ``_``), and only its first copy counts: one earlier on ``sys.path``
  shadows later ones (an editable install's dist-info in site-packages, a ``pip install
  --target`` directory on ``PYTHONPATH``);
* ``entry_points.txt`` is read as importlib reads it: ``[group]`` headers, ``name = value``
  lines, ``#`` comments; a file that cannot be read counts as none.

Whenever its answer could differ from importlib's, it asks importlib.metadata instead (then
the memory is spent, and nothing is lost): a ``sys.path`` entry that is not a directory (a
zip file) or is an ``.egg``, a metadata directory whose name does not give the
distribution's name, a line importlib rejects, a file that is not UTF-8, a path entry that
is not a str, or a finder on ``sys.meta_path`` (other than the standard path finder) that
offers distributions of its own.

importlib.metadata fails altogether when any distribution's ``entry_points.txt`` has a line
without ``=`` (TypeError) or is not UTF-8 (UnicodeDecodeError); a daemon would then not
start, for a file of an unrelated package. Then the scan is run again, leaving out (and
logging) the distributions whose files are malformed, and only if that cannot be done
either is importlib's exception raised.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Protocol

from mirror.i18n import _

log = logging.getLogger(__name__)

METADATA_SUFFIXES = (".dist-info", ".egg-info")
ENTRY_POINTS_FILE = "entry_points.txt"
# importlib.metadata.EntryPoint.pattern: module, optional ":attr.path", optional "[extras]".
VALUE_PATTERN = re.compile(
    r"(?P<module>[\w.]+)\s*"
    r"(:\s*(?P<attr>[\w.]+)\s*)?"
    r"((?P<extras>\[.*\])\s*)?$"
)
# What importlib.metadata's PathDistribution.read_text treats as "no such file".
UNREADABLE = (FileNotFoundError, IsADirectoryError, KeyError, NotADirectoryError,
              PermissionError)


class EntryPointLike(Protocol):
    """What mirror uses of an entry point: this module's :class:`EntryPoint` and
    importlib.metadata's (from the fallback) both offer it."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    @property
    def group(self) -> str: ...

    @property
    def module(self) -> str: ...

    def load(self) -> Any: ...


class Unsure(Exception):
    """The directory scan cannot be sure to agree with importlib.metadata; ask it instead."""


class Malformed(Unsure):
    """An ``entry_points.txt`` importlib.metadata would reject (and with it every other)."""


@dataclass(frozen=True)
class EntryPoint:
    """One entry point: ``name = value`` in the ``[group]`` of an ``entry_points.txt``."""

    name: str
    value: str
    group: str

    def _match(self) -> re.Match[str]:
        match = VALUE_PATTERN.match(self.value)
        if match is None:
            raise ValueError(_("entry point {name} = {value!r} is not module:attribute")
                             .format(name=self.name, value=self.value))
        return match

    @property
    def module(self) -> str:
        """The module part of :attr:`value` (``package.module``).

        Raises:
            ValueError: the value is not ``module[:attr[.attr…]] [extras]``.
        """
        return self._match().group("module")

    @property
    def attr(self) -> str | None:
        """The attribute path after the ``:`` (``Class.attribute``), or None.

        Raises:
            ValueError: the value is not ``module[:attr[.attr…]] [extras]``.
        """
        return self._match().group("attr")

    @property
    def extras(self) -> list[str]:
        """The names in the ``[extras]`` after the value, if any.

        Raises:
            ValueError: the value is not ``module[:attr[.attr…]] [extras]``.
        """
        return re.findall(r"\w+", self._match().group("extras") or "")

    def load(self) -> Any:
        """Import the module of :attr:`value` and follow its attribute path, as
        importlib.metadata.EntryPoint.load does.

        Returns:
            The object named (the module itself when the value names no attribute).

        Raises:
            ImportError: the module (or something it imports) cannot be imported.
            AttributeError: the module has no such attribute.
            ValueError: the value is not ``module[:attr[.attr…]] [extras]`` (importlib's
                load and properties fail with an AttributeError on such a value).
            Exception: whatever importing the module raises.
        """
        match = self._match()
        from importlib import import_module

        module = import_module(match.group("module"))
        attributes = filter(None, (match.group("attr") or "").split("."))
        return functools.reduce(getattr, attributes, module)


def normalize(name: str) -> str:
    """A distribution name as importlib.metadata compares them (``Prepared.normalize``):
    runs of ``-``, ``_`` and ``.`` as one ``_``, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def entry_points(group: str) -> list[EntryPointLike]:
    """The entry points of *group* in every installed distribution, in importlib.metadata's
    order (distributions in ``sys.path`` order, each one's entry points in file order).

    Returns:
        :class:`EntryPoint` objects from the directory scan, or importlib.metadata's own
        when the scan cannot be sure to agree with it (see the module's docstring); when
        importlib.metadata fails on a malformed ``entry_points.txt``, the scan's without
        the distributions whose files are malformed (each is logged as an error).

    Raises:
        Exception: what importlib.metadata raised, when it had to be asked, failed, and
            the scan could not do without it (e.g. a zip file on sys.path as well).
    """
    try:
        return list(scan(group, sys.path, sys.meta_path))
    except Unsure as reason:
        log.debug("entry points of %s: asking importlib.metadata (%s)", group, reason)
    except Exception:  # a surprise: importlib.metadata knows best
        log.debug("entry points of %s: asking importlib.metadata", group, exc_info=True)
    try:
        return from_importlib(group)
    except Exception as problem:
        try:
            return list(scan(group, sys.path, sys.meta_path, skip_malformed=True))
        except Exception:
            raise problem from None


def from_importlib(group: str) -> list[EntryPointLike]:
    """``importlib.metadata.entry_points(group=group)``, also on Python 3.9 (whose
    entry_points() takes no arguments and returns a dict of groups).

    Raises:
        Exception: whatever importlib.metadata raises (ValueError for a malformed file).
    """
    from importlib import metadata

    if sys.version_info >= (3, 10):
        return list(metadata.entry_points(group=group))
    return list(metadata.entry_points().get(group, ()))  # pragma: no cover - Python 3.9


def scan(group: str, path: list[Any], meta_path: list[Any],
         skip_malformed: bool = False) -> list[EntryPoint]:
    """The entry points of *group* found in the directories of *path* (``sys.path``), the
    first copy of each distribution only. With *skip_malformed*, a distribution whose
    ``entry_points.txt`` importlib.metadata would reject is logged and left out (it still
    hides later copies of itself).

    Raises:
        Unsure: the answer could differ from importlib.metadata's (a finder on *meta_path*
            with distributions of its own, an entry of *path* that is not a directory or
            is an egg, a metadata directory without a usable name).
        Malformed: an ``entry_points.txt`` has a line without ``=`` or is not UTF-8 (not
            with *skip_malformed*).
    """
    from importlib.machinery import PathFinder

    for finder in meta_path:
        if finder is not PathFinder and hasattr(finder, "find_distributions"):
            raise Unsure(f"{finder!r} finds distributions")
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for entry in path:
        if not isinstance(entry, str):
            raise Unsure(f"sys.path entry {entry!r} is not a str")
        for directory, key in distributions(entry):
            if key in seen:
                continue
            seen.add(key)
            file = os.path.join(entry, directory, ENTRY_POINTS_FILE)
            try:
                found.extend(parse(read(file), group, file))
            except Malformed as problem:
                if not skip_malformed:
                    raise
                log.error("%s; the plugins of that distribution are ignored", problem)
    return found


def distributions(entry: str) -> list[tuple[str, str]]:
    """The metadata directories (``NAME-VERSION.dist-info``, ``NAME.egg-info``…) in the
    ``sys.path`` entry *entry*, in ``os.listdir`` order, each with its distribution's
    normalized name; none if *entry* does not exist.

    Raises:
        Unsure: *entry* exists but cannot be listed as a directory (a zip file, no
            permission), it is an egg, or a name does not give a distribution name the
            way importlib.metadata takes it from the directory's name.
    """
    try:
        children = os.listdir(entry or ".")
    except FileNotFoundError:
        return []
    except OSError as problem:
        raise Unsure(f"sys.path entry {entry!r}: {problem}") from None
    if os.path.basename(entry).lower().endswith(".egg"):
        raise Unsure(f"sys.path entry {entry!r} is an egg")
    found = []
    for child in children:
        if not child.lower().endswith(METADATA_SUFFIXES):
            continue
        # importlib lists the name case-insensitively but takes the distribution's name from
        # it only with these exact suffixes and a non-empty name; otherwise from METADATA.
        stem, suffix = os.path.splitext(child)
        key = normalize(stem.partition("-")[0])
        if suffix not in METADATA_SUFFIXES or not key:
            raise Unsure(f"{os.path.join(entry, child)}: no distribution name in the name")
        found.append((child, key))
    return found


def read(path: str) -> str:
    """The text of *path* (UTF-8, universal newlines); empty if it does not exist or cannot be
    read, as importlib.metadata's ``read_text`` has it.

    Raises:
        Malformed: the file is not UTF-8 (importlib.metadata would raise).
        Unsure: another OSError.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UNREADABLE:
        return ""
    except UnicodeDecodeError as problem:
        raise Malformed(f"{path} is not UTF-8 ({problem})") from None
    except OSError as problem:
        raise Unsure(f"{path}: {problem}") from None


def parse(text: str, group: str, where: str = "") -> list[EntryPoint]:
    """The entry points of *group* in the text of an ``entry_points.txt``, read as
    importlib.metadata reads it (``Sectioned``): lines stripped; blank lines and ``#``
    comments skipped; ``[name]`` starts a section; lines before the first section ignored;
    ``name = value`` split at the first ``=``, both stripped.

    Raises:
        Malformed: a line in a section has no ``=`` (importlib.metadata raises TypeError
            for it, whichever group it is in; *where* names the file in the message).
    """
    found = []
    section = None
    for line in map(str.strip, text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        if section is None:
            continue
        name, equals, value = line.partition("=")
        if not equals:
            raise Malformed(f"{where}: the line {line!r} has no '='")
        if section == group:
            found.append(EntryPoint(name.strip(), value.strip(), section))
    return found
