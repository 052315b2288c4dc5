# SPDX-License-Identifier: GPL-3.0-or-later
"""One task section's values, parsed by the Settings of its kind, with every problem located.

The loader makes a :class:`TaskValues` per task section and has it :meth:`~TaskValues.read`
the common keys and the kind's; the kind's ``build`` then reads the typed values and reports
what is wrong with them taken together, or in their context (paths, commands), through it.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mirror.diagnostics import IssueCollector
from mirror.i18n import _
from mirror.inifile import Entry, Section
from mirror.pluginsettings import Setting, missing_message
from mirror.task import GeneralSettings
from mirror.values import command_missing, local_host_name

T = TypeVar("T")
Resolver = Callable[[str], "str | None"]


def repeated(setting: Setting[Any]) -> bool:
    """Whether *setting* may be given on several lines (its key ends with ``[]``)."""
    return setting.key.endswith("[]")


class TaskValues:
    """The values of one task section.

    Args:
        section: the section as read.
        entries: its entries by key (only known keys; each list in file order).
        issues: where problems go, with file, line, section and key.
        base_dir: what relative paths are relative to (the config file's directory).
        resolve: finds an executable by a name or a path (already made absolute), or None.
        general: the ``[general]`` settings (defaults some task keys).
    """

    def __init__(self, section: Section, entries: Mapping[str, list[Entry]],
                 issues: IssueCollector, base_dir: Path, resolve: Resolver,
                 general: GeneralSettings | None = None) -> None:
        self.section = section
        self.general = general if general is not None else GeneralSettings()
        self._entries = entries
        self._issues = issues
        self._base_dir = base_dir
        self._resolve = resolve
        self._values: dict[str, Any] = {}

    def read(self, settings: Iterable[Setting[Any]]) -> None:
        """Parse *settings*; a value that cannot be read, or a required key that is absent or
        empty, is reported and its default kept. A repeated key is only checked for
        presence here; :meth:`each` reads its lines."""
        for setting in settings:
            found = self._entries.get(setting.key, [])
            if repeated(setting):  # read line by line by each()
                if setting.required is not None and not any(entry.value for entry in found):
                    self.error(setting, missing_message(setting), at_entry=False)
                continue
            if not found or (setting.required is not None and not found[0].value):
                if setting.required is not None:
                    self.error(setting, missing_message(setting))
                continue
            value = self._convert(setting.parse, found[0])
            if value is not None:
                self._values[setting.key] = value

    def _convert(self, convert: Callable[[str], T], entry: Entry) -> T | None:
        try:
            return convert(entry.value)
        except ValueError as error:
            self._issues.error(str(error), entry.line, self.section.name, entry.key)
            return None

    def get(self, setting: Setting[T]) -> T:
        """The value of *setting*: as parsed, or its default when absent or unreadable."""
        return self._values.get(setting.key, setting.default)  # type: ignore[no-any-return]

    def text(self, setting: Setting[Any]) -> str:
        """*setting*'s text as written, or "" when absent."""
        found = self._entries.get(setting.key)
        return found[0].value if found else ""

    def given(self, setting: Setting[Any]) -> bool:
        """Whether the section sets *setting* at all (even to something unreadable)."""
        return bool(self._entries.get(setting.key))

    def each(self, setting: Setting[T],
             convert: Callable[[str], T] | None = None) -> tuple[T, ...]:
        """The non-empty lines of a repeated *setting*, each through *convert* (which may
        use the context, e.g. :meth:`absolute`; the setting's parse by default); a line it
        refuses is reported and left out."""
        parse = setting.parse if convert is None else convert
        converted = (self._convert(parse, entry)
                     for entry in self._entries.get(setting.key, []) if entry.value)
        return tuple(value for value in converted if value is not None)

    def check(self, setting: Setting[Any], check: Callable[[str], object]) -> None:
        """Run *check* on *setting*'s text, if given; a ValueError is reported at its line."""
        found = self._entries.get(setting.key)
        if found:
            self._convert(check, found[0])

    def require(self, setting: Setting[Any], hint: str,
                check: Callable[[str], object] | None = None) -> None:
        """Report *setting* missing (absent or empty), with *hint*, or run *check* on it:
        for a key required only when another one says so."""
        if not self.get(setting):
            self.error(setting, _("missing required key '{key}' ({hint})").format(
                key=setting.key, hint=hint))
        elif check is not None:
            self.check(setting, check)

    def line(self, setting: Setting[Any]) -> int:
        """The line of *setting*, or of the section header when it is absent."""
        found = self._entries.get(setting.key)
        return found[0].line if found else self.section.line

    def error(self, setting: Setting[Any], message: str, at_entry: bool = True) -> None:
        """Report an error about *setting*, at its line (or the section's, when absent or
        when *at_entry* is false)."""
        line = self.line(setting) if at_entry else self.section.line
        self._issues.error(message, line, self.section.name, setting.key)

    def warning(self, setting: Setting[Any], message: str) -> None:
        """Report a warning about *setting*, at its line."""
        self._issues.warning(message, self.line(setting), self.section.name, setting.key)

    def trace_host(self) -> str:
        """The name of this host's trace file: ``[general] tracehost``, else the host's fully
        qualified name (as ftpsync's ``hostname -f``)."""
        if self.general.tracehost:
            return self.general.tracehost
        return local_host_name()

    def absolute(self, path: str) -> str:
        """*path* made absolute: ``~`` expanded, relative to the config file's directory."""
        return os.path.abspath(os.path.join(self._base_dir, os.path.expanduser(path)))

    def path(self, setting: Setting[str | None]) -> str | None:
        """The value of a path *setting*, absolute, or None when absent."""
        value = self.get(setting)
        return None if value is None else self.absolute(value)

    def command(self, setting: Setting[str | None]) -> str | None:
        """The absolute path of the program *setting* names (looked up on PATH when it has
        no ``/``), or None, reported, when there is no such executable."""
        name = self.get(setting)
        if not name:
            return None
        resolved = self._resolve(self.absolute(name) if "/" in name else name)
        if resolved is None:
            self.error(setting, command_missing(name))
        return resolved
