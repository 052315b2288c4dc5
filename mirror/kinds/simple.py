# SPDX-License-Identifier: GPL-3.0-or-later
"""The simple kind: any program, run with the arguments the admin gives, in one stage or two."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from mirror.i18n import _
from mirror.kinds.base import (
    KindParts,
    TaskKind,
    TaskOptions,
    args_setting,
    command_setting,
    localdir_setting,
    parse_text,
)
from mirror.pluginsettings import Setting
from mirror.values import parse_bool, parse_words

if TYPE_CHECKING:
    from mirror.kinds.sectionvalues import TaskValues
    from mirror.task import Stage, TaskSpec

# 0.8.4 ran rsync when a simple task named no command; so does this.
COMMAND = command_setting("rsync", "the program to run")
LOCALDIR = localdir_setting(False, "the directory the task writes, if any")
ARGS = args_setting("", "the program's arguments")
TWOSTAGE = Setting("twostage", parse_bool, False, "run the program twice")
FIRSTSTAGE = Setting[Optional[str]]("firststage", parse_text, None,
                                    "the first stage's arguments")


@dataclass(frozen=True)
class SimpleOptions(TaskOptions):
    """A simple task's own values. ``firststage`` is the first stage's arguments, when the
    task has two stages."""

    KIND = "simple"
    command: str
    args: tuple[str, ...] = ()
    firststage: tuple[str, ...] | None = None

    @property
    def twostage(self) -> bool:
        return self.firststage is not None


class SimpleKind(TaskKind[SimpleOptions]):
    """``type = simple``: ``COMMAND ARGS`` (arguments are the admin's to choose, options
    included), after ``COMMAND FIRSTSTAGE`` when two-stage."""

    name = "simple"
    rank = 1
    settings = (COMMAND, LOCALDIR, ARGS, TWOSTAGE, FIRSTSTAGE)
    options_type = SimpleOptions

    def build(self, values: TaskValues) -> KindParts | None:
        """Resolve the command; with twostage, read the first stage's arguments."""
        firststage = None
        if values.get(TWOSTAGE):
            values.require(FIRSTSTAGE, _("twostage is on: give the first stage's arguments"),
                           parse_words)
            text = values.get(FIRSTSTAGE)
            firststage = _words_or_none(text) if text else None
        command = values.command(COMMAND)
        localdir = values.path(LOCALDIR)
        if command is None:
            return None
        options = SimpleOptions(command=command, args=values.get(ARGS), firststage=firststage)
        return KindParts(options, (), localdir)

    def stages(self, spec: TaskSpec, upstream_index: int, log_path: str) -> list[Stage]:
        from mirror.task import Stage

        options = self.options(spec)
        final = Stage((options.command, *options.args))
        if options.firststage is None:
            return [final]
        return [Stage((options.command, *options.firststage)), final]


def _words_or_none(text: str) -> tuple[str, ...] | None:
    try:
        return parse_words(text)
    except ValueError:
        return None  # reported by require()


KIND = SimpleKind()
