# SPDX-License-Identifier: GPL-3.0-or-later
"""A line-exact reader for mirror's INI files.

It reads what mirror 0.8.4's files contain and keeps every line number:
``[section]`` headers, ``key = value`` (or ``key: value``) lines, whole-line
comments starting with ``;`` or ``#``, inline comments after whitespace,
indented continuation lines, and keys that repeat (``upstream[]``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from mirror.diagnostics import IssueCollector
from mirror.i18n import _

_HEADER = re.compile(r"\[(?P<name>[^\]]*)\]\s*(?:[#;].*)?")
_INLINE_COMMENT = re.compile(r"\s[#;].*\Z", re.DOTALL)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class Entry:
    """One ``key = value`` line; *key* is lower-cased, *value* has comments stripped."""

    key: str
    value: str
    line: int


@dataclass
class Section:
    """A ``[name]`` header and the entries under it, in file order."""

    name: str
    line: int
    entries: list[Entry] = field(default_factory=list)


def strip_inline_comment(value: str) -> str:
    """Remove a ``#`` or ``;`` comment that follows whitespace, and outer whitespace."""
    return _INLINE_COMMENT.sub("", value).strip()


def parse_ini(text: str, issues: IssueCollector) -> list[Section]:
    """Split *text* into sections.

    Args:
        text: the decoded file.
        issues: receives one error per line that is not a header, an entry,
            a continuation or a comment.

    Returns:
        The sections in file order; repeated sections and keys are kept, for
        the caller to judge.
    """
    sections: list[Section] = []
    current: Section | None = None
    last_entry: Entry | None = None
    for number, raw in enumerate(_LINE_BREAK.split(text), start=1):
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if raw[0] in " \t" and last_entry is not None:
            continuation = strip_inline_comment(raw)
            last_entry.value = f"{last_entry.value}\n{continuation}".strip()
            continue
        header = _HEADER.fullmatch(stripped)
        if header:
            name = header.group("name").strip()
            if not name:
                issues.error(_("empty section name; write [general] or [TASKNAME]"), number)
            current = Section(name, number)
            sections.append(current)
            last_entry = None
            continue
        key, delimiter, value = _split_entry(stripped)
        if not delimiter or not key:
            issues.error(_("cannot read {line!r}: expected a [section] header, "
                           "'key = value', or a comment starting with ; or #").format(
                               line=stripped[:80]), number)
            last_entry = None
            continue
        if current is None:
            issues.error(_("'{key}' comes before any [section]; put it under [general] or a task")
                         .format(key=key), number)
            last_entry = None
            continue
        last_entry = Entry(key.lower(), strip_inline_comment(value), number)
        current.entries.append(last_entry)
    return sections


def _split_entry(line: str) -> tuple[str, str, str]:
    """Split at the first ``=`` or ``:``, as configparser does."""
    positions = [index for index in (line.find("="), line.find(":")) if index >= 0]
    if not positions:
        return line, "", ""
    at = min(positions)
    return line[:at].strip(), line[at], line[at + 1:]
