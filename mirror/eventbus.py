# SPDX-License-Identifier: GPL-3.0-or-later
"""Delivering events to plugins: one worker thread per plugin, each blocking on its own queue.

The daemon's loop only puts events on queues (never blocks); each plugin's
worker calls that plugin's handlers in order. A handler that raises is logged
with the plugin's name and skipped; one that blocks delays only its own plugin.

A handler is checked when it is registered, as pluggy checks hook implementations:
it must accept what the host will call it with (:func:`check_handler`).
"""
from __future__ import annotations

import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping

from mirror import component
from mirror.events import EVENT_TYPES, MirrorEvent

log = logging.getLogger(__name__)

Handler = Callable[..., object]
BACKLOG_WARNING = 100  # queued events; warned again each time the backlog doubles
_STOP = object()


class RegistrationError(Exception):
    """A handler cannot be registered; the message names the handler and the event."""


class UnknownEvent(RegistrationError, ValueError):
    """A handler was registered for an event name mirrord never emits."""


class HandlerMismatch(RegistrationError, TypeError):
    """A handler cannot be called the way mirrord calls the handlers of its event."""


def check_handler(event: str, handler: Handler) -> None:
    """Check that *handler* can be called as mirrord calls handlers of *event*: with the
    event's fields (the classic events, as 0.8.4 did) or with the event object.

    A callable whose signature Python cannot read (some built-ins) is taken on trust.

    Raises:
        UnknownEvent: mirrord has no event of that name.
        HandlerMismatch: *handler* needs other arguments; the message names the handler,
            its parameters, the event and the call mirrord makes.
    """
    event_type = EVENT_TYPES.get(event)
    if event_type is None:
        raise UnknownEvent(f"no event named {event!r}; known: {', '.join(EVENT_TYPES)}")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return
    arguments = event_type.handler_parameters()
    try:
        signature.bind(*arguments)
    except TypeError as problem:
        name = getattr(handler, "__qualname__", None) or repr(handler)
        raise HandlerMismatch(
            f"handler {name}{signature} does not fit {event}: mirrord calls it as "
            f"handler({', '.join(arguments)}) ({problem})") from None


class PluginWorker:
    """A plugin's handlers, keyed by event name, and the thread that calls them.

    Its ``register_event_handler`` and ``deregister_event_handler`` are 0.8.4's
    EventManager API, which 0.8.4 plugins reach through :mod:`mirror.component`.
    """

    def __init__(self, plugin_name: str, raw_config: Mapping[str, Mapping[str, str]],
                 on_exit: Callable[[], object] | None = None) -> None:
        """*on_exit* is called on the worker's thread when it ends (to wake a waiting loop)."""
        self.plugin_name = plugin_name
        self.raw_config = raw_config  # plugin.ini as 0.8.4 plugins read it
        self.handlers: dict[str, list[Handler]] = {}
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._events_queued = 0
        self._next_warning = BACKLOG_WARNING
        self._on_exit = on_exit
        self._done = threading.Event()

    def register_event_handler(self, event: str, handler: Handler) -> None:
        """Call *handler* for each *event* (a name from :data:`mirror.events.EVENT_TYPES`).

        Raises:
            UnknownEvent: mirrord has no event of that name.
            HandlerMismatch: *handler* cannot take what mirrord calls it with (see
                :func:`check_handler`); it is not registered.
        """
        check_handler(event, handler)
        with self._lock:
            handlers = self.handlers.setdefault(event, [])
            if handler not in handlers:
                handlers.append(handler)

    def deregister_event_handler(self, event: str, handler: Handler) -> None:
        """Stop calling *handler* for *event*; unknown pairs are ignored."""
        with self._lock:
            if handler in self.handlers.get(event, []):
                self.handlers[event].remove(handler)

    def wants(self, event: MirrorEvent) -> bool:
        """Whether any handler of this plugin is registered for *event*."""
        return bool(self.handlers.get(event.name))

    def start(self) -> None:
        """Start the worker thread (a daemon thread, so a stuck handler cannot hold exit)."""
        self._thread = threading.Thread(target=self._work, daemon=True,
                                        name=f"plugin:{self.plugin_name}")
        self._thread.start()

    def put(self, event: MirrorEvent) -> None:
        """Queue *event* for this plugin; never blocks. A growing backlog is logged."""
        with self._lock:
            self._events_queued += 1
            backlog = self._events_queued
        self._queue.put(event)
        if backlog >= self._next_warning:
            log.warning("plugin %s is %d events behind (a handler is slow or stuck)",
                        self.plugin_name, backlog)
            self._next_warning *= 2
        elif backlog < BACKLOG_WARNING // 2:
            self._next_warning = BACKLOG_WARNING

    def backlog(self) -> int:
        """How many events are queued and not yet started."""
        return self._events_queued

    def call(self, function: Callable[[], object]) -> None:
        """Run *function* on this plugin's thread, after the events queued before it."""
        self._queue.put(function)

    def request_stop(self) -> None:
        """End the thread once everything queued so far is delivered."""
        self._queue.put(_STOP)

    def wait_done(self, seconds: float) -> bool:
        """Block until the thread has finished its work, for at most *seconds*."""
        return self._done.wait(seconds)

    def running(self) -> bool:
        """Whether the thread is still working (false from just before its on_exit)."""
        return self._thread is not None and not self._done.is_set()

    def _work(self) -> None:
        component.bind(self, self.raw_config)
        try:
            while True:
                item = self._queue.get()  # blocks: an idle plugin thread costs no wakeups
                if item is _STOP:
                    return
                if isinstance(item, MirrorEvent):
                    with self._lock:
                        self._events_queued -= 1
                        handlers = list(self.handlers.get(item.name, ()))
                    for handler in handlers:
                        self._guarded(handler, item.name, item.args)
                else:
                    self._guarded(item, "a queued call", ())  # type: ignore[arg-type]
        finally:
            self._done.set()
            if self._on_exit is not None:
                self._guarded(self._on_exit, "its exit", ())

    def _guarded(self, handler: Handler, what: str, args: tuple[object, ...]) -> None:
        try:
            handler(*args)
        except BaseException:  # SystemExit too: it would end this plugin's thread silently
            log.exception("plugin %s: handler %s for %s failed; skipped",
                          self.plugin_name, getattr(handler, "__qualname__", handler), what)


class EventBus:
    """Fans events out to every plugin's worker."""

    def __init__(self) -> None:
        self.workers: list[PluginWorker] = []

    def add(self, worker: PluginWorker) -> None:
        """Take *worker* on and start its thread."""
        self.workers.append(worker)
        worker.start()

    def emit(self, event: MirrorEvent) -> None:
        """Queue *event* for every plugin that handles it. Called from the daemon's loop."""
        for worker in self.workers:
            if worker.wants(event):
                worker.put(event)

    def stop(self, seconds: float, wait: Callable[[float], object] | None = None) -> None:
        """Let every worker deliver what it has, all within *seconds* in total; a worker still
        busy then is abandoned (its thread is a daemon thread) with a warning.

        Args:
            wait: blocks for at most the given seconds, or until something happens (a
                worker's on_exit can end it early); the daemon serves plugins' loop calls
                in it, so that their last handlers can still take snapshots. Without it,
                the workers are simply waited for.
        """
        for worker in self.workers:
            worker.request_stop()
        deadline = time.monotonic() + seconds
        while True:
            running = [worker for worker in self.workers if worker.running()]
            left = deadline - time.monotonic()
            if not running or left <= 0:
                break
            if wait is None:
                running[0].wait_done(left)
            else:
                wait(left)
        for worker in self.workers:
            if worker.running():
                log.warning("plugin %s did not finish its last %d events in time; they are "
                            "dropped", worker.plugin_name, worker.backlog())
        self.workers.clear()
