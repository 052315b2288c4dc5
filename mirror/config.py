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
from mirror.interval import spread_offset
from mirror.kinds import DEFAULT_KIND, kind_named, kind_names, kinds_using, task_keys
from mirror.kinds.base import (
    AUTORETRY,
    COMMON_SETTINGS,
    ENABLED,
    HOOK_SETTINGS,
    INTERVAL,
    IOTIMEOUT,
    PRIORITY,
    PRIORITY_HIGHEST,
    PRIORITY_LOWEST,
    RANDOMDELAY,
    SUCCESSCODES,
    TIME,
    TIMEOUT,
    TYPE,
    TaskKind,
    joined_names,
)
from mirror.kinds.sectionvalues import TaskValues
from mirror.locations import PLUGIN_INI, ConfigLocation
from mirror.pluginsettings import PluginSection, Setting, read_sections
from mirror.task import GeneralSettings, Hooks, Schedule, TaskSpec
from mirror.textdecode import decode_config_bytes
from mirror.values import (
    check_task_name,
    command_missing,
    parse_emails,
    parse_exit_codes,
    parse_host_name,
    parse_non_negative_float,
    parse_non_negative_int,
    parse_ports,
    parse_trace_value,
    parse_words,
)

GENERAL = "general"
GENERAL_KEYS = ("emails", "loadlimit", "httpconn", "httpports", "logdir", "maxtasks",
                "successcodes", "killgrace", "statefile", "randomdelay", "exec_before",
                "exec_on_success", "exec_on_failure", "maintainer", "tracehost")
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


def with_run_advice(config: MirrorConfig) -> MirrorConfig:
    """*config* with advice for ``mirrord --check`` added to its warnings: a task with
    neither ``timeout`` nor ``iotimeout`` can hang for ever."""
    issues = IssueCollector(str(config.location.mirror_ini))
    for section in config.sections:
        spec = section.spec
        if spec is not None and spec.enabled and not spec.timeout and not spec.iotimeout:
            issues.warning(_("neither timeout nor iotimeout is set: a sync that hangs keeps "
                             "its slot and its localdir for ever (e.g. timeout = 12h, "
                             "iotimeout = 30m)"), section.line, section.name, "timeout")
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
        general = _read_general(general_sections[0], issues, base_dir, which)
    else:
        issues.warning(_("no [general] section; using the defaults (loadlimit 4.0, httpconn 1200, "
                         "logdir /var/log/rsync/, maxtasks 10)"))
        general = GeneralSettings()
    validator = _TaskValidator(issues, base_dir, which, general)
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


def _resolve_command(name: str, base_dir: Path, which: Which) -> str | None:
    """The absolute path of the executable *name* (a path, or a name on PATH), or None."""
    if "/" in name:
        path = _absolute(name, base_dir)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    found = which(name)
    return os.path.abspath(found) if found else None


def _hook_argv(words: tuple[str, ...], resolve: Which) -> tuple[str, ...]:
    """A hook's argv with its command resolved to an absolute path (empty: no hook).

    Raises:
        ValueError: the command cannot be run; the message says why.
    """
    if not words:
        return ()
    resolved = resolve(words[0])
    if resolved is None:
        raise ValueError(command_missing(words[0]))
    return (resolved, *words[1:])


def _read_general(section: Section, issues: IssueCollector, base_dir: Path,
                  which: Which = shutil.which) -> GeneralSettings:
    def hook(text: str) -> tuple[str, ...]:
        return _hook_argv(parse_words(text), lambda name: _resolve_command(name, base_dir, which))

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
        "randomdelay": parse_duration,
        "exec_before": hook,
        "exec_on_success": hook,
        "exec_on_failure": hook,
        "maintainer": parse_trace_value,
        "tracehost": parse_host_name,
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

    def __init__(self, issues: IssueCollector, base_dir: Path, which: Which,
                 general: GeneralSettings) -> None:
        self.issues = issues
        self.general = general
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
        values = TaskValues(section, entries, self.issues, self.base_dir, self._resolve,
                            self.general)
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
        schedule = self._schedule(values)
        priority = self._priority(values)
        hooks = Hooks(*(self._hook(values, setting) for setting in HOOK_SETTINGS))
        parts = kind.build(values)
        if schedule is None or parts is None:
            return None
        randomdelay = values.get(RANDOMDELAY)
        if randomdelay is None:
            randomdelay = self.general.randomdelay
        return TaskSpec(
            name=section.name, enabled=values.get(ENABLED), time=schedule.expression,
            schedule=schedule, options=parts.options, priority=priority,
            timeout=values.get(TIMEOUT), autoretry=values.get(AUTORETRY),
            upstreams=parts.upstreams, localdir=parts.localdir,
            successcodes=values.get(SUCCESSCODES), line=section.line,
            spread=spread_offset(section.name, randomdelay), hooks=hooks,
            iotimeout=values.get(IOTIMEOUT),
        )

    def _schedule(self, values: TaskValues) -> Schedule | None:
        """``time`` or ``interval``: exactly one of them (reported otherwise)."""
        if values.given(TIME) and values.given(INTERVAL):
            values.error(INTERVAL, _("set either time (a cron expression) or interval (a "
                                     "duration after the last run ended), not both"))
            return None
        if values.given(INTERVAL):
            return values.get(INTERVAL)
        if not values.given(TIME) or not values.text(TIME):
            values.error(TIME, _("missing required key 'time' (a cron expression, e.g. "
                                 "0 */6 * * *; or set interval, e.g. interval = 6h)"))
            return None
        return values.get(TIME)

    def _hook(self, values: TaskValues, setting: Setting[tuple[str, ...] | None]
              ) -> tuple[str, ...]:
        """A hook's argv with its command resolved; ``[general]``'s when the task does not
        set it; empty when set empty. An unknown command is reported."""
        words = values.get(setting)
        if words is None:
            return getattr(self.general, setting.key)  # type: ignore[no-any-return]
        try:
            return _hook_argv(words, lambda name: self._resolve(
                values.absolute(name) if "/" in name else name))
        except ValueError as problem:
            values.error(setting, str(problem))
            return ()

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
            self._commands[name] = _resolve_command(name, self.base_dir, self.which)
        return self._commands[name]
