# SPDX-License-Identifier: GPL-3.0-or-later
"""Event delivery: order, isolation of bad handlers, backlog warnings, bounded stop."""
from __future__ import annotations

import logging
import threading
import time

import pytest

from mirror import component
from mirror.eventbus import EventBus, PluginWorker, UnknownEvent
from mirror.events import (
    MirrorStartEvent,
    RunSystemTaskEvent,
    StopEvent,
    SystemTaskInfo,
    TaskEnqueueEvent,
    TaskStartEvent,
    TaskStopEvent,
)


def test_classic_events_pass_084_arguments_and_new_ones_pass_the_event():
    info = SystemTaskInfo("logcleaner", 60.0, 5, "* * * * *")
    assert MirrorStartEvent().args == ()
    assert TaskEnqueueEvent("debian").args == ("debian",)
    assert TaskStartEvent("debian", 42).args == ("debian", 42)
    assert TaskStopEvent("debian", 42, 23).args == ("debian", 42, 23)
    assert RunSystemTaskEvent(info).args == (info,)
    stop = StopEvent("SIGTERM")
    assert stop.args == (stop,) and stop.name == "StopEvent"


def test_events_arrive_in_order_on_the_plugins_own_thread_and_a_raiser_is_skipped(caplog):
    worker = PluginWorker("Sample", {})
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def explode(name):
        raise RuntimeError("boom")

    def record(name):
        seen.append((name, threading.current_thread().name))
        if name == "last":
            done.set()

    worker.register_event_handler("TaskEnqueueEvent", explode)
    worker.register_event_handler("TaskEnqueueEvent", record)
    bus = EventBus()
    bus.add(worker)
    names = [f"task{index}" for index in range(200)] + ["last"]
    with caplog.at_level(logging.ERROR):
        for name in names:
            bus.emit(TaskEnqueueEvent(name))
        assert done.wait(10)
    assert seen == [(name, "plugin:Sample") for name in names]
    assert "plugin Sample: handler test_events_arrive_in_order_on_the_plugins_own_thread_" \
           "and_a_raiser_is_skipped.<locals>.explode for TaskEnqueueEvent failed" in caplog.text
    bus.stop(5)


def test_a_blocked_plugin_delays_only_itself_warns_of_its_backlog_and_stop_is_bounded(caplog):
    release = threading.Event()
    slow, quick = PluginWorker("Slow", {}), PluginWorker("Quick", {})
    slow.register_event_handler("TaskEnqueueEvent", lambda name: release.wait(30))
    heard = []
    quick.register_event_handler("TaskEnqueueEvent", heard.append)
    bus = EventBus()
    bus.add(slow)
    bus.add(quick)
    with caplog.at_level(logging.WARNING):
        began = time.monotonic()
        for index in range(150):
            bus.emit(TaskEnqueueEvent(f"t{index}"))
        assert time.monotonic() - began < 1  # emitting never waits for a handler
        deadline = time.monotonic() + 5
        while len(heard) < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(heard) == 150
        assert "plugin Slow is 100 events behind" in caplog.text
        began = time.monotonic()
        bus.stop(0.5)
        assert time.monotonic() - began < 2
    assert "plugin Slow did not finish its last" in caplog.text
    release.set()


def test_unknown_event_names_are_refused_and_handlers_can_be_removed():
    worker = PluginWorker("Sample", {})
    with pytest.raises(UnknownEvent, match="no event named 'TaskStoppedEvent'"):
        worker.register_event_handler("TaskStoppedEvent", print)
    worker.register_event_handler("TaskStopEvent", print)
    assert worker.wants(TaskStopEvent("a", 1, 0))
    worker.deregister_event_handler("TaskStopEvent", print)
    assert not worker.wants(TaskStopEvent("a", 1, 0))


def test_component_answers_084_plugins_inside_their_threads_only():
    worker = PluginWorker("Old", {"old": {"key": "value"}})
    component.bind(worker, worker.raw_config)
    try:
        assert component.get("EventManager") is worker
        assert component.get("PluginManager").config["old"]["key"] == "value"
        with pytest.raises(KeyError, match="'Scheduler' is not available to plugins"):
            component.get("Scheduler")
    finally:
        component.unbind()
    with pytest.raises(KeyError, match=r"self\.host\.snapshot"):
        component.get("EventManager")
