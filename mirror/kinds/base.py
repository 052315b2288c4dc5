# SPDX-License-Identifier: GPL-3.0-or-later
"""What every task kind provides (:class:`TaskKind`), and the keys every task section has.

A kind module (``mirror/kinds/NAME.py``) declares its keys as :class:`Setting` values, a
frozen options dataclass (a :class:`TaskOptions`), and a module-level ``KIND``: an instance
of its :class:`TaskKind` subclass. The registry (:mod:`mirror.kinds`) finds it there; nothing
outside this package looks at a type name.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Optional, TypeVar

from mirror.cron import CronSchedule
from mirror.durations import parse_duration
from mirror.i18n import _
from mirror.interval import IntervalSchedule
from mirror.pluginsettings import Setting
from mirror.values import parse_bool, parse_exit_codes, parse_int, parse_words

if TYPE_CHECKING:
    from mirror.kinds.sectionvalues import TaskValues
    from mirror.task import Stage, TaskSpec

PRIORITY_HIGHEST = 1
PRIORITY_LOWEST = 10
DEFAULT_KIND = "rsync"  # the kind of a task without ``type``, as in 0.8.4


def parse_text(text: str) -> str:
    """The value as written (the loader has stripped it)."""
    return text


def parse_type_name(text: str) -> str:
    """A task type as written: case and surrounding blanks do not matter.

    Whether it names a kind is checked by the loader, which knows them all.
    """
    return text.strip().lower()


def parse_schedule(text: str) -> CronSchedule | None:
    """A cron expression (see :mod:`mirror.cron`); raises ValueError saying what is allowed."""
    return CronSchedule.parse(text)


# The keys of every task section, whatever its kind. ``type`` is read first, to pick the kind.
TYPE = Setting("type", parse_type_name, DEFAULT_KIND, "the task's kind")
ENABLED = Setting("enabled", parse_bool, True, "0 keeps the task but never runs it")
TIME = Setting("time", parse_schedule, None, "when to run (cron); or set interval")
INTERVAL = Setting[Optional[IntervalSchedule]](
    "interval", IntervalSchedule.parse, None, "run this long after the last run ended")
RANDOMDELAY = Setting[Optional[int]]("randomdelay", parse_duration, None,
                                     "delay each due run by a stable offset below this")
IOTIMEOUT = Setting("iotimeout", parse_duration, 0,
                    "end a stage that moved no data for this long; 0: never")
EXEC_BEFORE = Setting[Optional[tuple[str, ...]]](
    "exec_before", parse_words, None, "a command run first; non-zero: the run does not sync")
EXEC_ON_SUCCESS = Setting[Optional[tuple[str, ...]]](
    "exec_on_success", parse_words, None, "a command run after a sync that succeeded")
EXEC_ON_FAILURE = Setting[Optional[tuple[str, ...]]](
    "exec_on_failure", parse_words, None, "a command run after a sync that failed")
HOOK_SETTINGS = (EXEC_BEFORE, EXEC_ON_SUCCESS, EXEC_ON_FAILURE)
TIMEOUT = Setting("timeout", parse_duration, 0, "kill the run after this long; 0: never")
PRIORITY = Setting("priority", parse_int, PRIORITY_LOWEST, "1 (highest) to 10 (lowest)")
AUTORETRY = Setting("autoretry", parse_duration, 0, "retry a failed run this much later")
SUCCESSCODES = Setting[tuple[int, ...]]("successcodes", parse_exit_codes, (),
                                        "more exit codes that succeed")
COMMON_SETTINGS: tuple[Setting[Any], ...] = (
    TYPE, ENABLED, TIME, INTERVAL, RANDOMDELAY, TIMEOUT, IOTIMEOUT, PRIORITY, AUTORETRY,
    SUCCESSCODES, *HOOK_SETTINGS)


def command_setting(default: str | None, help_text: str) -> Setting[str | None]:
    """The ``command`` key: a name looked up on PATH, or a path. Required without *default*.

    The loader's :meth:`TaskValues.command` resolves it to an absolute path.
    """
    required = None if default is not None else (
        lambda: _("the program to run: a name on PATH or a path"))
    return Setting[Optional[str]]("command", parse_text, default, help_text, required=required)


def localdir_setting(required: bool, help_text: str) -> Setting[str | None]:
    """The ``localdir`` key; :meth:`TaskValues.path` makes it absolute."""
    return Setting[Optional[str]](
        "localdir", parse_text, None, help_text,
        required=(lambda: _("the directory the mirror is written to")) if required else None)


def args_setting(default: str, help_text: str,
                 parse: Callable[[str], tuple[str, ...]] = parse_words
                 ) -> Setting[tuple[str, ...]]:
    """The ``args`` key: words split as a POSIX shell splits them; *default* is their text."""
    return Setting[tuple[str, ...]]("args", parse, parse_words(default), help_text)


@dataclass(frozen=True)
class TaskOptions:
    """The values only one kind has. Each kind subclasses it as a frozen dataclass and sets
    ``KIND`` to its type name, by which :attr:`mirror.task.TaskSpec.kind` finds the kind."""

    KIND: ClassVar[str] = ""


@dataclass(frozen=True)
class KindParts:
    """What a kind's :meth:`TaskKind.build` gives: its options, and the two values of its
    keys that the scheduler reads on every task (failover walks ``upstreams``; two runs
    never share a ``localdir``)."""

    options: TaskOptions
    upstreams: tuple[str, ...] = ()
    localdir: str | None = None


OptionsT = TypeVar("OptionsT", bound=TaskOptions)


class TaskKind(ABC, Generic[OptionsT]):
    """One kind of task: its keys, how a section becomes its options, and what it runs.

    Subclasses set the class attributes and implement :meth:`build` and :meth:`stages`;
    the other methods have defaults that fit a kind without a special exit-code table.
    """

    #: the value of ``type`` that selects this kind
    name: ClassVar[str]
    #: where the kind comes in lists (messages, docs): rsync 0, the others after
    rank: ClassVar[int]
    #: its own keys (the keys of :data:`COMMON_SETTINGS` are every kind's)
    settings: ClassVar[tuple[Setting[Any], ...]]
    #: its options class
    options_type: ClassVar[type[TaskOptions]]
    #: exit codes besides 0 that count as success for every task of the kind
    success_codes: ClassVar[tuple[int, ...]] = ()

    @abstractmethod
    def build(self, values: TaskValues) -> KindParts | None:
        """The kind's part of a task, from a section whose keys have been parsed.

        Args:
            values: the parsed values of :attr:`settings`; report what is wrong with them
                taken together, or with their context (paths, commands), through it.

        Returns:
            The parts, or None when they cannot be built (an error has been reported).
        """

    @abstractmethod
    def stages(self, spec: TaskSpec, upstream_index: int, log_path: str) -> list[Stage]:
        """The stages of a run of *spec* from ``spec.upstreams[upstream_index]`` (wrapping
        around), writing to the task log *log_path*, in order."""

    def options(self, spec: TaskSpec) -> OptionsT:
        """*spec*'s options, typed as this kind's.

        Raises:
            TypeError: *spec* is of another kind (a programming error).
        """
        options = spec.options
        if not isinstance(options, self.options_type):
            raise TypeError(f"{spec.name} is a {spec.type} task, not a {self.name} task")
        return options  # type: ignore[return-value]

    def directories(self, spec: TaskSpec) -> tuple[str, ...]:
        """The directories to create before each stage starts; none by default."""
        return ()

    def checkfile(self, spec: TaskSpec) -> str | None:
        """The upstream's file that tells whether it changed since the last success, or None
        (the default: the kind cannot tell)."""
        return None

    def check_stage(self, spec: TaskSpec, upstream_index: int, destination: str
                    ) -> Stage | None:
        """The stage that fetches :meth:`checkfile` into *destination*, or None (the
        default)."""
        return None

    def trace_name(self, spec: TaskSpec) -> str | None:
        """The name of the Debian trace file written into the localdir after each successful
        sync, or None (the default: none)."""
        return None

    def route(self, spec: TaskSpec) -> str:
        """The last column of ``mirrord --check``: what the run reads and writes."""
        import shlex

        return shlex.join(self.stages(spec, 0, "")[-1].argv)

    def result_message(self, exit_code: int) -> str:
        """What a last stage's *exit_code* means, in English, for the status page."""
        return exit_message(exit_code)


def exit_message(exit_code: int) -> str:
    """What an exit code means when the program's own table is not known, in English."""
    return "Task finished" if exit_code == 0 else f"Exited with code {exit_code}"


def joined_names(names: Sequence[str]) -> str:
    """``rsync or simple or command``: kind names for a message, in the user's language."""
    return _(" or ").join(names)
