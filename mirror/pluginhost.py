# SPDX-License-Identifier: GPL-3.0-or-later
"""Finding, loading and hosting plugins, and the API they get.

Plugins are entry points in the group ``mirror.plugin.mirrorplugin`` of any
installed distribution. Each is loaded, constructed with its entry-point name,
given its :class:`HostAPI` and settings, and enabled; one that fails at any
step is logged with its name and left out. See docs/plugins.md.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mirror import component
from mirror.cron import CronSchedule
from mirror.diagnostics import IssueCollector
from mirror.eventbus import EventBus, Handler, PluginWorker, RegistrationError
from mirror.events import MirrorEvent
from mirror.loopcalls import LoopCaller, LoopFunction, LoopSide, T
from mirror.pluginbase import PluginBase
from mirror.plugininit import PluginInitBase
from mirror.pluginsettings import PluginSection, discover, validate_for
from mirror.policy import Conditions
from mirror.sysinfo import SystemProbe
from mirror.task import GeneralSettings
from mirror.views import Snapshot

if TYPE_CHECKING:
    from mirror.entrypoints import EntryPointLike

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0


__all__ = ["REQUEST_TIMEOUT", "HostAPI", "LoopSide", "PluginHost"]


class HostAPI:
    """What a plugin may use, from its own thread or any other.

    Attributes:
        name: the plugin's entry-point name.
        state_directory: where mirrord keeps its state file; a good default
            place for files a plugin writes.
        state_file: the state file itself (its name tells daemons that share
            state_directory apart).
    """

    def __init__(self, name: str, worker: PluginWorker, loop: LoopCaller, owner: PluginHost,
                 probe: SystemProbe) -> None:
        self.name = name
        self.state_directory = owner.state_directory
        self.state_file = owner.state_file
        self._worker = worker
        self._loop = loop
        self._owner = owner
        self._probe = probe

    @property
    def general(self) -> GeneralSettings:
        """The current [general] settings (emails, logdir, httpports…), read without the loop."""
        return self._owner.general

    def _ask(self, function: LoopFunction[T], timeout: float) -> T:
        future = self._loop(function)
        try:
            return future.result(timeout)
        except futures.TimeoutError:  # before Python 3.11 not the builtin TimeoutError
            future.cancel()  # a request that timed out never runs later
            raise TimeoutError(f"mirrord did not answer within {timeout} s") from None

    def register_event_handler(self, event: str, handler: Handler) -> None:
        """Call *handler* for each event named *event*, on this plugin's thread, in order.

        Classic events pass 0.8.4's positional arguments; the others pass the event.
        *handler* is checked against that call now; inside :meth:`PluginBase.enable`, a
        handler that does not fit keeps the whole plugin from being enabled.

        Raises:
            ValueError: no event has that name (:class:`mirror.eventbus.UnknownEvent`).
            TypeError: *handler* cannot take the event's arguments
                (:class:`mirror.eventbus.HandlerMismatch`).
        """
        self._worker.register_event_handler(event, handler)

    def deregister_event_handler(self, event: str, handler: Handler) -> None:
        """Undo :meth:`register_event_handler`."""
        self._worker.deregister_event_handler(event, handler)

    def events_pending(self) -> int:
        """How many events wait for this plugin; a handler that rewrites a whole file may
        skip its work while more are queued, since the last of them will do it."""
        return self._worker.backlog()

    def plugin_backlogs(self) -> dict[str, int]:
        """How many events wait for each enabled plugin (by name), read without the loop."""
        return {worker.plugin_name: worker.backlog() for worker in self._owner.bus.workers}

    def snapshot(self, timeout: float = REQUEST_TIMEOUT) -> Snapshot:
        """Every task, the queue and the settings plugins see, as of now.

        Raises:
            mirror.loopcalls.LoopClosed: the daemon has stopped serving.
            TimeoutError: the loop did not answer within *timeout* seconds.
        """
        return self._ask(lambda side: side.snapshot(), timeout)

    def request(self, message: dict[str, Any], timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
        """Ask the daemon what an admin could ask through the control socket.

        *message* is a control request (``{"command": "run", "name": "debian"}``;
        commands queue, status, run, cancel; ``wait`` is not offered). The reply
        is the same dict the control socket answers with.
        """
        return self._ask(lambda side: side.plugin_request(dict(message)), timeout)

    def schedule_system(self, name: str, schedule: str, priority: int = 5) -> None:
        """Queue a system entry *name* on a cron *schedule*; each time it is due, every
        plugin gets RunSystemTaskEvent, and ``mirrord -t`` lists it as kind ``system``.

        Raises:
            ValueError: *schedule* is not a cron expression mirror reads.
        """
        parsed = CronSchedule.parse(schedule)
        self._loop(lambda side: side.add_system_entry(name, parsed, priority))

    def set_task_size(self, name: str, size: int) -> None:
        """Record the size of *name*'s mirror (bytes); kept in the state file, shown by
        status pages, and announced to every plugin as TaskSizeEvent."""
        self._loop(lambda side: side.record_size(name, int(size)))

    def system_conditions(self) -> Conditions:
        """The 5-minute load and the HTTP connections to [general] httpports now, measured
        whatever the limits are, on the calling thread (counting connections may be slow)."""
        general = self.general
        measured = replace(general, loadlimit=max(general.loadlimit, 1.0),
                           httpconn=max(general.httpconn, 1) if general.httpports else 0)
        return self._probe.conditions(measured, 0)


class PluginHost:
    """The enabled plugins: their workers on the event bus, and their objects."""

    def __init__(self, loop: LoopCaller, probe: SystemProbe, state_file: str,
                 general: Callable[[], GeneralSettings] = GeneralSettings) -> None:
        """*general* gives the current [general] settings (the daemon's core holds them;
        a reload replaces them there in one step)."""
        self.bus = EventBus()
        self.state_file = os.path.abspath(state_file)
        self.state_directory = os.path.dirname(self.state_file)
        self.plugins: dict[str, PluginBase] = {}
        self._loop = loop
        self._probe = probe
        self._disablers: dict[str, Callable[[], object]] = {}  # by plugin name
        self._general = general

    @property
    def general(self) -> GeneralSettings:
        """The current [general] settings, for HostAPI."""
        return self._general()

    def load(self, sections: Mapping[str, PluginSection],
             entries: Iterable[EntryPointLike] | None = None) -> None:
        """Load, construct and enable every plugin not switched off in plugin.ini."""
        raw = {name: dict(section.raw) for name, section in sections.items()}
        for entry in discover() if entries is None else entries:
            section = sections.get(entry.name.lower())
            if section is not None and not section.enabled:
                log.info("plugin %s: switched off in plugin.ini ([%s] enabled = 0)",
                         entry.name, section.name)
                continue
            try:
                cls = entry.load()
            except Exception:
                log.exception("plugin %s (%s) cannot be imported; mirrord goes on without it",
                              entry.name, entry.value)
                continue
            if not getattr(cls, "enabled", True):
                log.info("plugin %s: its class says enabled = False", entry.name)
                continue
            issues = IssueCollector("plugin.ini")
            settings = validate_for(cls, section, issues)
            if settings is None:
                for issue in issues.issues:
                    log.error("plugin %s not enabled: %s", entry.name, issue)
                continue
            self._enable(entry.name, cls, settings, raw)

    def _enable(self, name: str, cls: Any, settings: dict[str, Any],
                raw: dict[str, dict[str, str]]) -> None:
        # A worker that ends wakes the loop, which waits for the workers at stop.
        worker = PluginWorker(name, raw, on_exit=lambda: self._loop(lambda side: None))
        component.bind(worker, raw)
        try:
            instance = cls(name)
            plugin = instance.plugin if isinstance(instance, PluginInitBase) else instance
            plugin.host = HostAPI(name, worker, self._loop, self, self._probe)
            plugin.settings = settings
            instance.enable()  # a 0.8.4 wrapper passes it on
        except RegistrationError as problem:  # its own message says what is wrong
            log.error("plugin %s not enabled: %s", name, problem)
            return
        except Exception:
            log.exception("plugin %s failed to start; mirrord goes on without it", name)
            return
        finally:
            component.unbind()
        self.plugins[name] = plugin
        self._disablers[name] = instance.disable
        self.bus.add(worker)
        log.info("plugin %s enabled", name)

    def emit(self, event: MirrorEvent) -> None:
        """Queue *event* for every plugin that handles it; never blocks."""
        self.bus.emit(event)

    def stop(self, seconds: float, wait: Callable[[float], object]) -> None:
        """Deliver what is queued, then call each plugin's disable() on its thread, all within
        *seconds* (see :meth:`EventBus.stop` for *wait*)."""
        for worker in self.bus.workers:
            worker.call(self._disablers[worker.plugin_name])
        self.bus.stop(seconds, wait)
