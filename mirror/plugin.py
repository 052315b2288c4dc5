# SPDX-License-Identifier: GPL-3.0-or-later
"""Everything a mirror plugin uses, from one module: ``from mirror.plugin import ...``.

The plugin author's map (docs/plugins.md tells the whole story):

Writing the plugin
    :class:`PluginBase`: subclass it, register the class as an entry point in the group
    ``mirror.plugin.mirrorplugin``, subscribe to events in ``enable()``.
    :class:`Setting` declares a plugin.ini key in ``SETTINGS``; the parsers
    (:func:`parse_bool`, :func:`parse_int`, :func:`parse_non_negative_int`,
    :func:`parse_non_negative_float`, :func:`parse_duration`, :func:`parse_absolute_path`,
    :func:`parse_emails`, :func:`parse_ports`, :func:`split_list`) are the ones mirror's
    own keys use: each raises ``ValueError`` saying what is allowed.

Talking to the daemon
    ``self.host`` is a :class:`HostAPI`: ``register_event_handler``, ``snapshot``,
    ``request``, ``schedule_system``, ``set_task_size``, ``system_conditions`` (a
    :class:`Conditions`), ``events_pending``, ``plugin_backlogs``, ``general``,
    ``state_directory``. A call
    that needs the daemon's loop may end in one of :data:`UNANSWERED`
    (:class:`LoopClosed`, ``TimeoutError``) instead of an answer.

What the daemon looks like
    :class:`Snapshot` (``host.snapshot()``) holds :class:`TaskView` and
    :class:`QueueView` objects; a task's ``state`` is a :class:`TaskCondition`
    (:data:`RUNNING`, :data:`IDLE` or :data:`DISABLED`); a run's result is a
    :class:`RunResult` (:data:`SUCCESS`, :data:`UNCHANGED`, :data:`FAILED`, :data:`TIMEOUT`,
    :data:`STALLED`, :data:`VETOED`, :data:`CANCELLED`, :data:`KILLED`, :data:`UNATTENDED` or
    :data:`INTERRUPTED`; ``result.fresh`` says whether the mirror is up to date); a queue
    entry's kind is a :class:`QueueKind`. All three are strings too: they compare equal to,
    and serialise as, their words.

Events
    The classic ones (0.8.4's names; handlers get positional arguments):
    :class:`MirrorStartEvent`, :class:`TaskEnqueueEvent`, :class:`PreTaskStartEvent`,
    :class:`TaskStartEvent`, :class:`TaskStopEvent`, :class:`RunSystemTaskEvent` (whose
    argument is a :class:`SystemTaskInfo`). The detailed ones (handlers get the event):
    :class:`RunFinishedEvent`, :class:`TaskSizeEvent`, :class:`ReloadEvent`,
    :class:`StopEvent`. :data:`EVENT_TYPES` maps each name to its class, and
    ``EVENT_TYPES[name].handler_parameters()`` says what a handler is called with. A
    handler is checked when it is registered: :class:`UnknownEvent` (a ``ValueError``)
    for a name mirrord never emits, :class:`HandlerMismatch` (a ``TypeError``) for a
    handler that cannot take the event's arguments; raised in ``enable()``, either keeps
    the plugin from being enabled.

mirror 0.8.4's API
    :class:`PluginInitBase` (the entry point's wrapper class) and :mod:`component`
    (``component.get("EventManager")``, ``component.get("PluginManager").config``), for
    plugins written in that style. ``mirror.plugininit``, ``mirror.component`` and
    ``mirror.pluginbase`` stay importable, so plugins written for 0.8.4 load unchanged.
"""
from __future__ import annotations

from mirror import component
from mirror.durations import parse_duration
from mirror.eventbus import HandlerMismatch, UnknownEvent
from mirror.events import (
    EVENT_TYPES,
    MirrorEvent,
    MirrorStartEvent,
    PreTaskStartEvent,
    ReloadEvent,
    RunFinishedEvent,
    RunSystemTaskEvent,
    StopEvent,
    SystemTaskInfo,
    TaskEnqueueEvent,
    TaskSizeEvent,
    TaskStartEvent,
    TaskStopEvent,
)
from mirror.history import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    KILLED,
    STALLED,
    SUCCESS,
    TIMEOUT,
    UNATTENDED,
    UNCHANGED,
    VETOED,
    RunResult,
)
from mirror.loopcalls import UNANSWERED, LoopClosed
from mirror.pluginbase import PluginBase
from mirror.pluginhost import HostAPI
from mirror.plugininit import PluginInitBase
from mirror.pluginsettings import Setting
from mirror.policy import Conditions
from mirror.taskqueue import QueueKind
from mirror.values import (
    parse_absolute_path,
    parse_bool,
    parse_emails,
    parse_int,
    parse_non_negative_float,
    parse_non_negative_int,
    parse_ports,
    split_list,
)
from mirror.views import DISABLED, IDLE, RUNNING, QueueView, Snapshot, TaskCondition, TaskView

__all__ = [
    "CANCELLED",
    "DISABLED",
    "EVENT_TYPES",
    "FAILED",
    "IDLE",
    "INTERRUPTED",
    "KILLED",
    "RUNNING",
    "STALLED",
    "SUCCESS",
    "TIMEOUT",
    "UNANSWERED",
    "UNATTENDED",
    "UNCHANGED",
    "VETOED",
    "Conditions",
    "HandlerMismatch",
    "HostAPI",
    "LoopClosed",
    "MirrorEvent",
    "MirrorStartEvent",
    "PluginBase",
    "PluginInitBase",
    "PreTaskStartEvent",
    "QueueKind",
    "QueueView",
    "ReloadEvent",
    "RunFinishedEvent",
    "RunResult",
    "RunSystemTaskEvent",
    "Setting",
    "Snapshot",
    "StopEvent",
    "SystemTaskInfo",
    "TaskCondition",
    "TaskEnqueueEvent",
    "TaskSizeEvent",
    "TaskStartEvent",
    "TaskStopEvent",
    "TaskView",
    "UnknownEvent",
    "component",
    "parse_absolute_path",
    "parse_bool",
    "parse_duration",
    "parse_emails",
    "parse_int",
    "parse_non_negative_float",
    "parse_non_negative_int",
    "parse_ports",
    "split_list",
]
