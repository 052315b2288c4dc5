# SPDX-License-Identifier: GPL-3.0-or-later
"""A closed set of words as an enum that still reads, compares and serialises as its word.

``TextEnum`` members are ``str`` instances: ``RunResult.SUCCESS == "success"``, ``json.dumps``
writes ``"success"``, and f-strings, ``format()`` and ``%s`` show ``success`` (a plain
``(str, Enum)`` would show ``RunResult.SUCCESS`` through ``%s``, and from Python 3.12 through
f-strings too). So log lines, task logs and JSON stay what they were when these were bare strings.
"""
from __future__ import annotations

from enum import Enum


class TextEnum(str, Enum):
    """An enum of words; a member is its value wherever text is made of it."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)
