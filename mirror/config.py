# SPDX-License-Identifier: GPL-3.0-or-later
"""Find, read and validate mirror.ini (and plugin.ini) into frozen settings.

Every problem becomes a ConfigIssue with its file, line, section and key; a
task with an error is kept out of the schedule, the others are used. Nothing
in a file's content makes these functions raise.
"""
from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mirror.diagnostics import ERROR, WARNING, ConfigIssue, IssueCollector
from mirror.durations import parse_duration
from mirror.i18n import _
from mirror.inifile import Entry, Section, parse_ini
from mirror.kinds import DEFAULT_KIND, kind_named, kind_names, kinds_using, task_keys
from mirror.kinds.base import (
    AUTORETRY,
    COMMON_SETTINGS,
    ENABLED,
    PRIORITY,
    PRIORITY_HIGHEST,
    PRIORITY_LOWEST,
    SUCCESSCODES,
    TIME,
    TIMEOUT,
    TYPE,
    TaskKind,
    joined_names,
)
from mirror.kinds.sectionvalues import TaskValues
from mirror.locations import PLUGIN_INI, ConfigLocation
from mirror.pluginsettings import PluginSection, read_sections
from mirror.task import GeneralSettings, TaskSpec
from mirror.textdecode import decode_config_bytes
from mirror.values import (
    check_task_name,
    parse_emails,
    parse_exit_codes,
    parse_non_negative_float,
    parse_non_negative_int,
    parse_ports,
)

GENERAL = "general"
GENERAL_KEYS = ("emails", "loadlimit", "httpconn", "httpports", "logdir", "maxtasks",
                "successcodes", "killgrace", "statefile")
MAX_FILE_BYTES = 16 * 1024 * 1024

Which = Callable[[str], "str | None"]


@dataclass(frozen=True)
class TaskSection:
    """A task section as read: its raw values, and the TaskSpec if it has no error."""

    name: str
    line: int
    values: dict[str, str]
    spec: TaskSpec | None


@dataclass(frozen=True)
class MirrorConfig:
    """Everything read from mirror.ini and plugin.ini."""

    location: ConfigLocation
    general: GeneralSettings
    sections: tuple[TaskSection, ...]
    plugins: dict[str, PluginSection] = field(default_factory=dict)
    issues: tuple[ConfigIssue, ...] = ()

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        """The valid tasks, in file order."""
        return tuple(section.spec for section in self.sections if section.spec is not None)

    @property
    def errors(self) -> tuple[ConfigIssue, ...]:
        return tuple(issue for issue in self.issues if issue.severity == ERROR)

    @property
    def warnings(self) -> tuple[ConfigIssue, ...]:
        return tuple(issue for issue in self.issues if issue.severity == WARNING)


def load_config(location: ConfigLocation, which: Which = shutil.which) -> MirrorConfig:
    """Read and validate the config at *location*.

    Args:
        location: from :func:`locate_config`.
        which: finds a command on PATH (a seam for tests).

    Returns:
        The config; its ``issues`` say what is wrong. Never raises for bad content.
    """
    issues = IssueCollector(str(location.mirror_ini))
    text = _read_text(location.mirror_ini, issues, required=True)
    if text is None:
        return MirrorConfig(location, GeneralSettings(), (), issues=tuple(issues.issues))
    config = parse_mirror_ini(text, str(location.mirror_ini), location.directory, which)
    plugin_issues = IssueCollector(str(location.plugin_ini))
    plugin_text = _read_text(location.plugin_ini, plugin_issues, required=False)
    plugins: dict[str, PluginSection] = {}
    if plugin_text is not None:
        plugins = read_sections(parse_ini(plugin_text, plugin_issues))
    return replace(config, location=location, plugins=plugins,
                   issues=tuple(issues.issues) + config.issues + tuple(plugin_issues.issues))


def with_plugin_checks(config: MirrorConfig) -> MirrorConfig:
    """*config* with what is wrong in the sections of the installed plugins added to its
    issues (this imports the plugins; ``mirrord --check`` uses it)."""
    from mirror.pluginsettings import check_plugin_sections

    issues = IssueCollector(str(config.location.plugin_ini))
    check_plugin_sections(config.plugins, issues)
    return replace(config, issues=config.issues + tuple(issues.issues))


def _read_text(path: Path, issues: IssueCollector, required: bool) -> str | None:
    """Read and decode a config file; problems go to *issues* and give None."""
    try:
        # Non-blocking, so that a FIFO planted in place of the file cannot hang the start.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                issues.error(_("not a regular file; give the config file or its directory"))
                return None
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        if required:
            issues.error(_("no such file; give the config directory or file with -c"))
        return None
    except OSError as error:
        issues.error(_("cannot read: {reason}").format(reason=error.strerror or error))
        return None
    if len(data) > MAX_FILE_BYTES:
        issues.error(_("larger than {size} MiB; this is not a config file").format(
            size=MAX_FILE_BYTES // (1024 * 1024)))
        return None
    try:
        text, warning = decode_config_bytes(data)
    except ValueError as error:
        issues.error(str(error))
        return None
    if warning:
        issues.warning(warning)
    return text


def parse_mirror_ini(text: str, file: str, base_dir: Path,
                     which: Which = shutil.which) -> MirrorConfig:
    """Validate the text of a mirror.ini.

    Args:
        text: the decoded file.
        file: its name, for messages.
        base_dir: what relative paths in it are relative to.
        which: finds a command on PATH.

    Returns:
        The config (its location points at *file*). Never raises for bad content.
    """
    issues = IssueCollector(file)
    sections = parse_ini(text, issues)
    location = ConfigLocation(base_dir, Path(file), base_dir / PLUGIN_INI)
    if not sections:
        if not issues.issues:
            issues.error(_("no sections: a mirror.ini needs a [general] section and one "
                           "[TASKNAME] section per task"), 1)
        return MirrorConfig(location, GeneralSettings(), (), issues=tuple(issues.issues))
    unique: list[Section] = []
    first_line: dict[str, int] = {}
    for section in sections:
        if section.name in first_line:
            issues.error(_("section repeated (first on line {line}); merge the two")
                         .format(line=first_line[section.name]), section.line, section.name)
        else:
            first_line[section.name] = section.line
            unique.append(section)
    general_sections = [section for section in unique if section.name == GENERAL]
    if general_sections:
        general = _read_general(general_sections[0], issues, base_dir)
    else:
        issues.warning(_("no [general] section; using the defaults (loadlimit 4.0, httpconn 1200, "
                         "logdir /var/log/rsync/, maxtasks 10)"))
        general = GeneralSettings()
    validator = _TaskValidator(issues, base_dir, which)
    tasks = tuple(validator.read(section) for section in unique
                  if section.name != GENERAL and section.name)
    if not tasks:
        issues.warning(_("no task sections; add one [TASKNAME] section per mirror"))
    in_file_order = sorted(issues.issues, key=lambda issue: issue.line or 0)
    return MirrorConfig(location, general, tasks, issues=tuple(in_file_order))


def _suggest(key: str, known: tuple[str, ...]) -> str:
    import difflib  # only for a mistyped key

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return _("unknown key '{key}' (did you mean '{match}'?)").format(key=key, match=close[0])
    return _("unknown key '{key}' (known keys: {known})").format(key=key, known=", ".join(known))


def _entries_by_key(section: Section, known: tuple[str, ...],
                    issues: IssueCollector) -> dict[str, list[Entry]]:
    """Group a section's entries by key; warn on unknown keys and report repeats."""
    grouped: dict[str, list[Entry]] = {}
    for entry in section.entries:
        if entry.key not in known:
            issues.warning(_suggest(entry.key, known), entry.line, section.name, entry.key)
            continue
        previous = grouped.setdefault(entry.key, [])
        if previous and not entry.key.endswith("[]"):
            issues.error(_("set twice (first on line {line}); only upstream[] may repeat")
                         .format(line=previous[0].line), entry.line, section.name, entry.key)
            continue
        previous.append(entry)
    return grouped


def _absolute(path: str, base_dir: Path) -> str:
    return os.path.abspath(os.path.join(base_dir, os.path.expanduser(path)))


def _read_general(section: Section, issues: IssueCollector, base_dir: Path) -> GeneralSettings:
    converters: dict[str, Callable[[str], object]] = {
        "emails": parse_emails,
        "loadlimit": parse_non_negative_float,
        "httpconn": parse_non_negative_int,
        "httpports": parse_ports,
        "logdir": lambda value: _absolute(value, base_dir) + os.sep,
        "maxtasks": parse_non_negative_int,
        "successcodes": parse_exit_codes,
        "killgrace": parse_duration,
        "statefile": lambda value: _absolute(value, base_dir),
    }
    values: dict[str, object] = {}
    for key, entries in _entries_by_key(section, GENERAL_KEYS, issues).items():
        entry = entries[0]
        try:
            values[key] = converters[key](entry.value)
        except ValueError as error:
            issues.error(str(error), entry.line, section.name, key)
    return GeneralSettings(**values)  # type: ignore[arg-type]


class _TaskValidator:
    """Turns one task section into a TaskSection, recording its issues."""

    def __init__(self, issues: IssueCollector, base_dir: Path, which: Which) -> None:
        self.issues = issues
        self.base_dir = base_dir
        self.which = which
        self.keys = task_keys()
        self._commands: dict[str, str | None] = {}

    def read(self, section: Section) -> TaskSection:
        before = len(self.issues.issues)
        name = section.name
        entries = _entries_by_key(section, self.keys, self.issues)
        raw = {key: found[0].value for key, found in entries.items()}
        if name.lower() == GENERAL:
            self.issues.error(_("write the section name as [general], in lower case"),
                              section.line, name)
        else:
            try:
                check_task_name(name)
            except ValueError as error:
                self.issues.error(str(error), section.line, name)
        spec = self._build(section, entries)
        has_error = any(issue.severity == ERROR for issue in self.issues.issues[before:])
        return TaskSection(name, section.line, raw, None if has_error else spec)

    def _kind(self, values: TaskValues) -> TaskKind[Any]:
        """The kind ``type`` names; rsync when it is absent, or, reported, unknown."""
        values.read((TYPE,))
        kind = kind_named(values.get(TYPE) or DEFAULT_KIND)
        if kind is None:
            values.error(TYPE, _("'{value}' is not a task type (use {types}; leave it out for "
                                 "{default})").format(value=values.text(TYPE),
                                                     types=kind_names(), default=DEFAULT_KIND))
            kind = kind_named(DEFAULT_KIND)
        assert kind is not None
        return kind

    def _build(self, section: Section, entries: dict[str, list[Entry]]) -> TaskSpec | None:
        values = TaskValues(section, entries, self.issues, self.base_dir, self._resolve)
        kind = self._kind(values)
        own = {setting.key for setting in (*COMMON_SETTINGS, *kind.settings)}
        for key, found in entries.items():
            if key not in own:
                message = _("ignored: only {types} tasks use it").format(
                    types=joined_names(kinds_using(key)))
                for entry in found:
                    self.issues.warning(message, entry.line, section.name, key)
        values.read(setting for setting in COMMON_SETTINGS if setting is not TYPE)
        values.read(kind.settings)
        schedule = values.get(TIME)
        priority = self._priority(values)
        parts = kind.build(values)
        if schedule is None or parts is None:
            return None
        return TaskSpec(
            name=section.name, enabled=values.get(ENABLED), time=schedule.expression,
            schedule=schedule, options=parts.options, priority=priority,
            timeout=values.get(TIMEOUT), autoretry=values.get(AUTORETRY),
            upstreams=parts.upstreams, localdir=parts.localdir,
            successcodes=values.get(SUCCESSCODES), line=section.line,
        )

    def _priority(self, values: TaskValues) -> int:
        value = values.get(PRIORITY)
        clamped = min(max(value, PRIORITY_HIGHEST), PRIORITY_LOWEST)
        if clamped != value:
            values.warning(PRIORITY, _("{value} is outside 1-10 (1 is the highest); using "
                                       "{clamped}").format(value=value, clamped=clamped))
        return clamped

    def _resolve(self, name: str) -> str | None:
        """The executable *name* (an absolute path, or a name on PATH) is, or None."""
        if name not in self._commands:
            if name.startswith("/"):
                usable = os.path.isfile(name) and os.access(name, os.X_OK)
                self._commands[name] = name if usable else None
            else:
                found = self.which(name)
                self._commands[name] = os.path.abspath(found) if found else None
        return self._commands[name]
