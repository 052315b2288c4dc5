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

from mirror.commandline import check_upstream
from mirror.cron import CronSchedule
from mirror.diagnostics import ERROR, WARNING, ConfigIssue, IssueCollector
from mirror.durations import parse_duration
from mirror.i18n import _
from mirror.inifile import Entry, Section, parse_ini
from mirror.locations import PLUGIN_INI, ConfigLocation
from mirror.pluginsettings import PluginSection, read_sections
from mirror.task import (
    DEFAULT_RSYNC_ARGS,
    PRIORITY_HIGHEST,
    PRIORITY_LOWEST,
    RSYNC,
    SIMPLE,
    TASK_TYPES,
    GeneralSettings,
    TaskSpec,
)
from mirror.textdecode import decode_config_bytes
from mirror.values import (
    check_rsyncdir,
    check_subdirectory,
    check_task_name,
    parse_bool,
    parse_emails,
    parse_exit_codes,
    parse_int,
    parse_non_negative_float,
    parse_non_negative_int,
    parse_ports,
    parse_words,
)

GENERAL = "general"
UPSTREAM = "upstream[]"
GENERAL_KEYS = ("emails", "loadlimit", "httpconn", "httpports", "logdir", "maxtasks",
                "successcodes", "killgrace", "statefile")
TASK_KEYS = ("type", "enabled", UPSTREAM, "command", "time", "rsyncdir", "localdir", "args",
             "exclude", "twostage", "firststage", "timeout", "priority", "autoretry",
             "successcodes")
RSYNC_ONLY_KEYS = (UPSTREAM, "rsyncdir", "exclude")
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
        self._commands: dict[str, str | None] = {}

    def read(self, section: Section) -> TaskSection:
        before = len(self.issues.issues)
        name = section.name
        entries = _entries_by_key(section, TASK_KEYS, self.issues)
        raw = {key: found[0].value for key, found in entries.items()}
        if name.lower() == GENERAL:
            self._error(section, None, _("write the section name as [general], in lower case"))
        else:
            self._convert(section, None, check_task_name, name)
        spec = self._build(section, entries, raw)
        has_error = any(issue.severity == ERROR for issue in self.issues.issues[before:])
        return TaskSection(name, section.line, raw, None if has_error else spec)

    def _error(self, section: Section, entry: Entry | None, message: str,
               key: str | None = None) -> None:
        line = entry.line if entry else section.line
        self.issues.error(message, line, section.name, entry.key if entry else key)

    def _convert(self, section: Section, entry: Entry | None,
                 converter: Callable[[str], object], value: str) -> object:
        try:
            return converter(value)
        except ValueError as error:
            self._error(section, entry, str(error))
            return None

    def _value(self, section: Section, entries: dict[str, list[Entry]], key: str,
               converter: Callable[[str], object], default: object) -> object:
        found = entries.get(key)
        if not found:
            return default
        return self._convert(section, found[0], converter, found[0].value)

    def _required(self, section: Section, entries: dict[str, list[Entry]], key: str,
                  hint: str) -> Entry | None:
        found = entries.get(key)
        if found and found[0].value:
            return found[0]
        entry = found[0] if found else None
        self._error(section, entry, _("missing required key '{key}' ({hint})").format(
            key=key, hint=hint), key)
        return None

    def _build(self, section: Section, entries: dict[str, list[Entry]],
               raw: dict[str, str]) -> TaskSpec | None:
        task_type = raw.get("type", RSYNC).strip().lower() or RSYNC
        if task_type not in TASK_TYPES:
            self._error(section, entries["type"][0], _("'{value}' is not a task type (use rsync or "
                        "simple; leave it out for rsync)").format(value=raw["type"]))
            task_type = RSYNC
        if task_type == SIMPLE:
            for key in RSYNC_ONLY_KEYS:
                for entry in entries.get(key, []):
                    self.issues.warning(_("ignored: only rsync tasks use it"),
                                        entry.line, section.name, key)
        enabled = self._value(section, entries, "enabled", parse_bool, True)
        time_entry = self._required(section, entries, "time",
                                    _("a cron expression, e.g. 0 */6 * * *"))
        schedule = (self._convert(section, time_entry, CronSchedule.parse, time_entry.value)
                    if time_entry else None)
        command = self._command(section, entries)
        priority = self._priority(section, entries)
        timeout = self._value(section, entries, "timeout", parse_duration, 0)
        autoretry = self._value(section, entries, "autoretry", parse_duration, 0)
        default_args = DEFAULT_RSYNC_ARGS if task_type == RSYNC else ""
        args = self._value(section, entries, "args", parse_words, parse_words(default_args))
        exclude = self._value(section, entries, "exclude", parse_words, ())
        if task_type == RSYNC:
            for key, words in (("args", args), ("exclude", exclude)):
                if isinstance(words, tuple) and "--" in words:
                    self._error(section, entries[key][0], _(
                        "a bare '--' ends rsync's options early, and mirrord puts one before "
                        "the source and destination itself; remove it"))
        successcodes = self._value(section, entries, "successcodes", parse_exit_codes, ())
        twostage = self._value(section, entries, "twostage", parse_bool, False)
        firststage = None
        if twostage:
            if task_type == RSYNC:
                hint = _("twostage is on: name the directory synced first, e.g. pool")
            else:
                hint = _("twostage is on: give the first stage's arguments")
            entry = self._required(section, entries, "firststage", hint)
            if entry:
                firststage = entry.value
                check = parse_words if task_type == SIMPLE else check_subdirectory
                self._convert(section, entry, check, entry.value)
        upstreams: tuple[str, ...] = ()
        rsyncdir = ""
        localdir = None
        if task_type == RSYNC:
            upstreams = self._upstreams(section, entries)
            rsyncdir_entry = self._required(section, entries, "rsyncdir",
                                            _("the module and path on the upstream, e.g. debian/"))
            rsyncdir = rsyncdir_entry.value if rsyncdir_entry else ""
            if rsyncdir_entry:
                self._convert(section, rsyncdir_entry, check_rsyncdir, rsyncdir)
            localdir_entry = self._required(section, entries, "localdir",
                                            _("the directory the mirror is written to"))
            if localdir_entry:
                localdir = _absolute(localdir_entry.value, self.base_dir)
        elif entries.get("localdir"):
            localdir = _absolute(entries["localdir"][0].value, self.base_dir)
        if schedule is None or command is None:
            return None
        return TaskSpec(
            name=section.name, type=task_type, enabled=bool(enabled), time=schedule.expression,
            schedule=schedule, command=command, priority=priority, timeout=timeout or 0,
            autoretry=autoretry or 0, args=args or (), exclude=exclude or (),
            twostage=bool(twostage), firststage=firststage, upstreams=upstreams,
            rsyncdir=rsyncdir, localdir=localdir, successcodes=successcodes or (),
            line=section.line,
        )

    def _upstreams(self, section: Section, entries: dict[str, list[Entry]]) -> tuple[str, ...]:
        found = [entry for entry in entries.get(UPSTREAM, []) if entry.value]
        if not found:
            self._error(section, None, _("missing required key '{key}' (one line per upstream: "
                        "a host, an rsync://host/module/ URL, or a local path)").format(
                            key=UPSTREAM), UPSTREAM)
        upstreams = []
        for entry in found:
            value = entry.value
            if value.startswith(("./", "../")):  # a local tree beside the config file
                value = _absolute(value, self.base_dir)
            self._convert(section, entry, check_upstream, value)
            upstreams.append(value)
        return tuple(upstreams)

    def _priority(self, section: Section, entries: dict[str, list[Entry]]) -> int:
        found = entries.get("priority")
        if not found:
            return PRIORITY_LOWEST
        entry = found[0]
        value = self._convert(section, entry, parse_int, entry.value)
        if not isinstance(value, int):
            return PRIORITY_LOWEST
        clamped = min(max(value, PRIORITY_HIGHEST), PRIORITY_LOWEST)
        if clamped != value:
            self.issues.warning(_("{value} is outside 1-10 (1 is the highest); using {clamped}")
                                .format(value=value, clamped=clamped),
                                entry.line, section.name, "priority")
        return clamped

    def _command(self, section: Section, entries: dict[str, list[Entry]]) -> str | None:
        found = entries.get("command")
        entry = found[0] if found else None
        name = entry.value if entry and entry.value else RSYNC
        if name not in self._commands:
            self._commands[name] = self._resolve(name)
        resolved = self._commands[name]
        if resolved is None:
            if "/" in name:
                message = _("'{name}' is not an executable file").format(name=name)
            else:
                message = _("command '{name}' not found on PATH; install it or give its "
                            "full path").format(name=name)
            self._error(section, entry, message, "command")
        return resolved

    def _resolve(self, name: str) -> str | None:
        if "/" in name:
            path = _absolute(name, self.base_dir)
            return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
        found = self.which(name)
        return os.path.abspath(found) if found else None
