# SPDX-License-Identifier: GPL-3.0-or-later
"""Config problems as values: each knows its file, line, section and key."""
from __future__ import annotations

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in a config file.

    Rendered as ``FILE:LINE: [SECTION] KEY: message``; parts that do not apply
    (a file-level problem has no section) are left out.
    """

    severity: str
    file: str
    line: int | None
    section: str | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [f"{where}:"]
        if self.section is not None:
            parts.append(f"[{self.section}]")
        if self.key is not None:
            parts.append(f"{self.key}:")
        parts.append(self.message)
        return " ".join(parts)

    def as_dict(self) -> dict[str, object]:
        """The JSON shape used by ``mirrord --check --json``."""
        return {
            "file": self.file,
            "line": self.line,
            "section": self.section,
            "key": self.key,
            "message": self.message,
        }


class IssueCollector:
    """Collects issues for one file, so that callers need not repeat its name."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[ConfigIssue] = []

    def error(self, message: str, line: int | None = None,
              section: str | None = None, key: str | None = None) -> None:
        """Record an error: the section it is in (or the whole file) is not used."""
        self.issues.append(ConfigIssue(ERROR, self.file, line, section, key, message))

    def warning(self, message: str, line: int | None = None,
                section: str | None = None, key: str | None = None) -> None:
        """Record a warning: the value is used, but the admin should look."""
        self.issues.append(ConfigIssue(WARNING, self.file, line, section, key, message))
