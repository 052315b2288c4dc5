# SPDX-License-Identifier: GPL-3.0-or-later
"""The command kind: a sync script, told what to do through its environment.

tunasync's "command" provider, under mirror's names: the script gets ``MIRROR_NAME``,
``MIRROR_LOCALDIR``, ``MIRROR_UPSTREAM``, ``MIRROR_LOGFILE`` and ``MIRROR_STAGE``. An
upstream may be any text (a URL, usually) and goes only into the environment, never into
the argv, so no upstream can be read as an option by the script.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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
from mirror.runenv import STAGE_VARIABLE, run_environment

if TYPE_CHECKING:
    from mirror.kinds.sectionvalues import TaskValues
    from mirror.task import Stage, TaskSpec

COMMAND = command_setting(None, "the script to run")
ARGS = args_setting("", "the script's arguments")
UPSTREAMS = Setting("upstream[]", parse_text, "", "what the script syncs from (any text)")
LOCALDIR = localdir_setting(True, "the directory the script writes")



@dataclass(frozen=True)
class CommandOptions(TaskOptions):
    """A command task's own values (its upstreams and localdir are the TaskSpec's)."""

    KIND = "command"
    command: str
    args: tuple[str, ...] = ()


class CommandKind(TaskKind[CommandOptions]):
    """``type = command``: ``COMMAND ARGS`` in one stage, with the run's facts in
    ``MIRROR_*`` variables."""

    name = "command"
    rank = 2
    settings = (COMMAND, ARGS, UPSTREAMS, LOCALDIR)
    options_type = CommandOptions

    def build(self, values: TaskValues) -> KindParts | None:
        """Resolve the command and make localdir absolute; upstreams are taken as written."""
        upstreams = values.each(UPSTREAMS)
        command = values.command(COMMAND)
        localdir = values.path(LOCALDIR)
        if command is None:
            return None
        return KindParts(CommandOptions(command=command, args=values.get(ARGS)), upstreams,
                         localdir)

    def stages(self, spec: TaskSpec, upstream_index: int, log_path: str) -> list[Stage]:
        """One stage, ``COMMAND ARGS``; the upstream of this attempt (wrapping around; empty
        when there is none) and the rest go into its environment only."""
        from mirror.task import Stage

        options = self.options(spec)
        upstream = (spec.upstreams[upstream_index % len(spec.upstreams)]
                    if spec.upstreams else "")
        environ = {**run_environment(spec.name, spec.localdir, upstream, log_path),
                   STAGE_VARIABLE: "1"}
        return [Stage((options.command, *options.args), environ)]

    def directories(self, spec: TaskSpec) -> tuple[str, ...]:
        """The localdir, created before the script starts, as for rsync."""
        return (spec.localdir,) if spec.localdir else ()

    def route(self, spec: TaskSpec) -> str:
        """``UPSTREAM (+N more) → LOCALDIR``, or the command line when there is no upstream."""
        if not spec.upstreams:
            return f"{super().route(spec)} → {spec.localdir}"
        more = len(spec.upstreams) - 1
        extra = _(" (+{count} more)").format(count=more) if more else ""
        return f"{spec.upstreams[0]}{extra} → {spec.localdir}"


KIND = CommandKind()
