# SPDX-License-Identifier: GPL-3.0-or-later
"""Plugin settings: each plugin's plugin.ini section, read with line numbers and validated.

A plugin declares its keys as :class:`Setting` values; every plugin also
accepts ``enabled``. Problems are reported like mirror.ini's, e.g.
``plugin.ini:4: [slatefish] listen: 'x' is not HOST:PORT (use 127.0.0.1:8000)``.

The config loader imports this module, so it imports nothing heavy at load:
difflib only when a key is unknown. Plugins are discovered by mirror.entrypoints,
which reads the distributions' entry_points.txt itself and imports
importlib.metadata (with the email package) only when it must.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mirror.diagnostics import IssueCollector
from mirror.i18n import _
from mirror.inifile import Section
from mirror.values import parse_bool

if TYPE_CHECKING:
    from mirror.entrypoints import EntryPointLike

ENABLED = "enabled"
ENTRY_POINT_GROUP = "mirror.plugin.mirrorplugin"

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One key of a plugin's section (or of a task section: see :mod:`mirror.kinds`).

    ``parse`` turns the text into a value or raises ValueError with a message
    that says what is allowed; ``default`` is used when the key is absent.
    ``required``, when set, makes the key required: it returns, in the user's
    language, what to give, for the "missing required key" message (a function,
    so that the text is translated when the message is made, not at import).
    """

    key: str
    parse: Callable[[str], T]
    default: T
    help: str = ""
    required: Callable[[], str] | None = None


def missing_message(setting: Setting[Any]) -> str:
    """The error for a required *setting* that is absent or empty, in the user's language."""
    hint = setting.required() if setting.required is not None else ""
    return _("missing required key '{key}' ({hint})").format(key=setting.key, hint=hint)


@dataclass(frozen=True)
class PluginSection:
    """A plugin.ini section as read: raw values (0.8.4 plugins read these) and its line."""

    name: str
    line: int | None
    raw: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """False when the section says ``enabled = 0`` (or no, false, off)."""
        try:
            return parse_bool(self.raw.get(ENABLED, "1"))
        except ValueError:
            return True  # reported by validate(); an unreadable switch does not silence it


def read_sections(sections: Iterable[Section]) -> dict[str, PluginSection]:
    """plugin.ini's sections by lower-case name; a repeated key keeps its last value."""
    result = {}
    for section in sections:
        name = section.name.lower()
        raw = {entry.key: entry.value for entry in section.entries}
        lines = {entry.key: entry.line for entry in section.entries}
        result[name] = PluginSection(name, section.line, raw, lines)
    return result


def validate(schema: tuple[Setting[Any], ...], section: PluginSection | None,
             issues: IssueCollector,
             check: Callable[[dict[str, Any]], list[str]] | None = None) -> dict[str, Any] | None:
    """Read *section* against *schema*; then *check* says what is wrong with the values taken
    together (each such problem is reported at the section's header line).

    Returns:
        The values by key (defaults filled in), or None if any key has an error.
        An empty *schema* means the plugin reads its raw values itself (the
        0.8.4 way); then the raw values are returned unchecked.
    """
    if section is None:
        section = PluginSection("", None)
    ok = True
    if ENABLED in section.raw:
        try:
            parse_bool(section.raw[ENABLED])
        except ValueError as problem:
            issues.error(str(problem), section.lines.get(ENABLED), section.name, ENABLED)
            ok = False
    if not schema:
        return dict(section.raw) if ok else None
    known = {setting.key: setting for setting in schema}
    values: dict[str, Any] = {setting.key: setting.default for setting in schema}
    for key, text in section.raw.items():
        line = section.lines.get(key)
        if key == ENABLED:
            continue
        setting = known.get(key)
        if setting is None:
            import difflib

            close = difflib.get_close_matches(key, [*known, ENABLED], n=1)
            hint = (_("did you mean {key}?").format(key=close[0]) if close
                    else _("known keys: {keys}").format(keys=", ".join(sorted(known))))
            issues.warning(_("unknown key, ignored; {hint}").format(hint=hint), line,
                           section.name, key)
            continue
        try:
            values[key] = setting.parse(text)
        except ValueError as problem:
            issues.error(str(problem), line, section.name, key)
            ok = False
        except Exception as problem:  # a third-party parser's bug must not end --check
            issues.error(_("the plugin could not read this value ({problem!r})").format(
                problem=problem), line, section.name, key)
            ok = False
    for setting in schema:
        if setting.required is not None and not section.raw.get(setting.key, "").strip():
            issues.error(missing_message(setting), section.lines.get(setting.key, section.line),
                         section.name, setting.key)
            ok = False
    if ok and check is not None:
        try:
            problems = list(check(values))
        except Exception as failure:
            problems = [_("the plugin could not check its settings ({problem!r})").format(
                problem=failure)]
        for message in problems:
            issues.error(message, section.line, section.name)
            ok = False
    return values if ok else None


def discover() -> list[EntryPointLike]:
    """The plugins: the entry points of the group ``mirror.plugin.mirrorplugin`` in every
    installed distribution (the first copy of each distribution on sys.path, as
    ``importlib.metadata.entry_points(group=...)`` finds them), sorted by name. Of two
    plugins with the same name the first found is kept and the other is logged.

    Returns:
        Objects with ``name``, ``value``, ``group`` and ``load()`` (see
        :mod:`mirror.entrypoints`; importlib.metadata's own when it had to be asked).
        A distribution whose entry_points.txt is malformed is logged and left out.

    Raises:
        Exception: importlib.metadata had to be asked (a zip file on sys.path, say) and
            failed (see :func:`mirror.entrypoints.entry_points`).
    """
    from mirror.entrypoints import entry_points

    found: dict[str, EntryPointLike] = {}
    for entry in entry_points(ENTRY_POINT_GROUP):
        if entry.name in found:
            log.error("two plugins are called %s (%s and %s); only the first is used",
                      entry.name, found[entry.name].value, entry.value)
            continue
        found[entry.name] = entry
    return [found[name] for name in sorted(found)]


def validate_for(cls: Any, section: PluginSection | None,
                 issues: IssueCollector) -> dict[str, Any] | None:
    """:func:`validate` with the SETTINGS and ``check_settings`` a plugin class declares
    (through a 0.8.4 wrapper too, whose ``_plugin_class`` is often only set in ``__init__``:
    then there are none)."""
    target = getattr(cls, "_plugin_class", None) or cls
    schema = getattr(target, "SETTINGS", ())
    schema = tuple(schema) if isinstance(schema, (tuple, list)) else ()
    return validate(schema, section, issues, getattr(target, "check_settings", None))


def check_plugin_sections(sections: Mapping[str, PluginSection], issues: IssueCollector) -> None:
    """Validate the sections of every installed plugin that is not switched off, for
    ``mirrord --check``. It imports the plugins, which is why the config loader does not do
    this (the daemon validates each plugin as it loads it, after detaching). A plugin that
    cannot be imported is skipped here; the daemon reports it when it loads plugins.
    """
    entries = discover()
    installed = {entry.name.lower() for entry in entries}
    for section in sections.values():
        if section.name not in installed:
            issues.warning(_("no installed plugin has this name; the section is ignored "
                             "(installed: {names})").format(
                                 names=", ".join(sorted(installed)) or _("none")),
                           section.line, section.name)
    for entry in entries:
        plugin_section = sections.get(entry.name.lower())
        if plugin_section is None or not plugin_section.enabled:
            continue
        try:
            cls = entry.load()
        except Exception:
            continue
        validate_for(cls, plugin_section, issues)
