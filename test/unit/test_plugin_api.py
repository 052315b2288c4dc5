# SPDX-License-Identifier: GPL-3.0-or-later
"""The plugin API: mirror.plugin exports what docs/plugins.md names, and nothing in the docs or
the sample plugin imports from anywhere else; handlers are checked against their event when
they are registered (through the real PluginHost, log line included); plugins written with
0.8.4's own imports still load; one JSON shape of a task for the control socket and
/api/status."""
from __future__ import annotations

import ast
import json
import logging
import re
import textwrap
import time
from concurrent.futures import Future
from dataclasses import replace
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

import mirror.plugin
from mirror.client import print_status
from mirror.cron import CronSchedule
from mirror.entrypoints import EntryPoint
from mirror.eventbus import HandlerMismatch, PluginWorker, UnknownEvent, check_handler
from mirror.events import EVENT_TYPES, RunFinishedEvent, TaskStopEvent
from mirror.pluginhost import PluginHost
from mirror.pluginsettings import ENTRY_POINT_GROUP
from mirror.policy import Conditions
from mirror.viewjson import api_document, queue_reply, run_reply, status_reply, task_json
from mirror.views import IDLE, RUNNING, QueueView, Snapshot, TaskView

ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = ROOT / "docs" / "plugins.md"
SAMPLE = ROOT / "test" / "sample_plugin"
NOW = 1_700_000_000.0


# --- mirror.plugin is the one module -----------------------------------------------------

def documented_names() -> set[str]:
    """The names in the first column of docs/plugins.md's "The `mirror.plugin` module" table."""
    text = DOCS.read_text()
    section = text.split("## The `mirror.plugin` module", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Za-z_]+)`", row.split(" | ")[0])}


def test_mirror_plugin_exports_exactly_what_the_docs_name():
    assert set(mirror.plugin.__all__) == documented_names()
    for name in mirror.plugin.__all__:
        assert getattr(mirror.plugin, name) is not None, name
    assert set(EVENT_TYPES) <= set(mirror.plugin.__all__)  # every event is there


def mirror_imports(source: str) -> set[str]:
    """The mirror modules *source* imports from."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return {module for module in modules if module.split(".")[0] == "mirror"}


def test_the_docs_and_the_sample_plugin_import_only_from_mirror_plugin():
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert blocks
    sources = blocks + [path.read_text() for path in SAMPLE.rglob("*.py")]
    assert set().union(*(mirror_imports(source) for source in sources)) == {"mirror.plugin"}
    assert (ROOT / "mirror" / "py.typed").is_file()


def test_the_docs_example_is_a_plugin_that_loads(tmp_path, monkeypatch, caplog):
    (block,) = [block for block in re.findall(r"```python\n(.*?)```", DOCS.read_text(),
                                              re.DOTALL) if "class Webhook" in block]
    (tmp_path / "docs_webhook.py").write_text(block.replace("...  #", "pass  #"))
    monkeypatch.syspath_prepend(str(tmp_path))
    host = load(tmp_path, caplog, Webhook="docs_webhook:Webhook")
    assert list(host.plugins) == ["Webhook"]
    assert host.plugins["Webhook"].settings == {"url": "http://127.0.0.1:9000/"}
    host.stop(5, nap)


# --- handlers are checked at registration ------------------------------------------------

def test_a_handler_must_take_what_its_event_is_called_with():
    def on_stop(taskname, taskpid, exitcode): ...
    def on_anything(*args): ...
    def on_finished(event, extra=None): ...
    def takes_two(taskname, result): ...

    check_handler("TaskStopEvent", on_stop)
    check_handler("TaskStopEvent", on_anything)
    check_handler("MirrorStartEvent", lambda: None)
    check_handler("RunFinishedEvent", on_finished)
    check_handler("RunFinishedEvent", print)  # no signature Python can read: trusted
    with pytest.raises(HandlerMismatch) as problem:
        check_handler("RunFinishedEvent", takes_two)
    assert str(problem.value) == (
        "handler test_a_handler_must_take_what_its_event_is_called_with.<locals>.takes_two"
        "(taskname, result) does not fit RunFinishedEvent: mirrord calls it as "
        "handler(event) (missing a required argument: 'result')")
    with pytest.raises(HandlerMismatch, match=r"calls it as handler\(taskname, taskpid, "
                                               r"exitcode\) \(too many positional"):
        check_handler("TaskStopEvent", lambda taskname: None)
    with pytest.raises(TypeError):  # HandlerMismatch is a TypeError
        check_handler("MirrorStartEvent", on_finished)
    with pytest.raises(UnknownEvent, match="no event named 'TaskFinishedEvent'"):
        check_handler("TaskFinishedEvent", on_finished)
    assert TaskStopEvent.handler_parameters() == ("taskname", "taskpid", "exitcode")
    assert RunFinishedEvent.handler_parameters() == ("event",)


def test_a_handler_that_does_not_fit_is_not_registered():
    worker = PluginWorker("Plugin", {})
    with pytest.raises(HandlerMismatch):
        worker.register_event_handler("TaskStartEvent", lambda taskname: None)
    assert worker.handlers.get("TaskStartEvent", []) == []


class Side:
    """The daemon's side of the loop, answered at once on the calling thread."""

    def snapshot(self) -> Snapshot:
        return Snapshot(NOW, timezone.utc, (), (), "/var/log/mirror", ())

    def plugin_request(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def add_system_entry(self, name: str, schedule: object, priority: int) -> None:
        pass

    def record_size(self, name: str, size: int) -> None:
        pass


def loop(function: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(function(Side()))
    return future


class Probe:
    def conditions(self, general: object, running: int) -> Conditions:
        return Conditions(load=0.5, http_connections=0)


def nap(seconds: float) -> None:
    """How the test waits for plugin threads at stop: in short naps, not all *seconds*."""
    time.sleep(min(seconds, 0.01))


def load(directory: Path, caplog: pytest.LogCaptureFixture, **entries: str) -> PluginHost:
    """A real PluginHost that has loaded *entries* (name = module:attribute)."""
    host = PluginHost(loop, Probe(), str(directory / "state.json"))  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="mirror.pluginhost")

    host.load({}, [EntryPoint(name, value, ENTRY_POINT_GROUP)
                                      for name, value in entries.items()])
    return host


PLUGINS = textwrap.dedent('''
    from mirror.plugin import PluginBase, PluginInitBase, component


    class Mismatched(PluginBase):
        def enable(self):
            self.host.register_event_handler("TaskStartEvent", self.on_start)
            self.host.register_event_handler("RunFinishedEvent", self.on_finished)

        def on_start(self, taskname, taskpid):
            pass

        def on_finished(self, taskname, result):  # gets the event object
            pass


    class OldStopper(PluginBase):
        def enable(self):
            component.get("EventManager").register_event_handler("TaskStopEvent", self.on_stop)

        def on_stop(self, taskname):  # 0.8.4 calls it with taskname, taskpid, exitcode
            pass


    class OldStopperEntry(PluginInitBase):
        _plugin_class = OldStopper


    class Fine(PluginBase):
        def enable(self):
            self.seen = []
            self.host.register_event_handler("RunFinishedEvent", self.seen.append)
''')

# Written with 0.8.4's own imports, which must keep working unchanged.
OLD_PLUGIN = textwrap.dedent('''
    import mirror.component as component
    from mirror.pluginbase import PluginBase
    from mirror.plugininit import PluginInitBase


    class Recorder(PluginBase):
        def enable(self):
            self.seen = []
            self.section = component.get("PluginManager").config
            component.get("EventManager").register_event_handler("TaskStopEvent", self.on_stop)

        def on_stop(self, taskname, taskpid, exitcode):
            self.seen.append((taskname, taskpid, exitcode))


    class MirrorPlugin(PluginInitBase):
        _plugin_class = Recorder
''')


def test_the_host_refuses_a_plugin_whose_handler_does_not_fit(tmp_path, monkeypatch, caplog):
    (tmp_path / "checked_plugins.py").write_text(PLUGINS)
    monkeypatch.syspath_prepend(str(tmp_path))
    host = load(tmp_path, caplog, Mismatched="checked_plugins:Mismatched",
                OldStopper="checked_plugins:OldStopperEntry", Fine="checked_plugins:Fine")
    assert list(host.plugins) == ["Fine"]  # the others are not enabled; the rest go on
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert [record.getMessage() for record in errors] == [
        "plugin Mismatched not enabled: handler Mismatched.on_finished(taskname, result) does "
        "not fit RunFinishedEvent: mirrord calls it as handler(event) (missing a required "
        "argument: 'result')",
        "plugin OldStopper not enabled: handler OldStopper.on_stop(taskname) does not fit "
        "TaskStopEvent: mirrord calls it as handler(taskname, taskpid, exitcode) (too many "
        "positional arguments)"]
    assert all(record.exc_info is None for record in errors)  # a load error, not a traceback
    event = RunFinishedEvent("debian", "run", "success", 0, None, NOW, NOW + 1, 1.0, 1, 1,
                             None, "/var/log/mirror/debian.log", 0, 0, None)
    host.emit(event)
    host.emit(TaskStopEvent("debian", 42, 0))
    host.stop(5, nap)
    assert host.plugins["Fine"].seen == [event]  # type: ignore[attr-defined]


def test_a_plugin_with_084_imports_loads_unchanged(tmp_path, monkeypatch, caplog):
    (tmp_path / "old_recorder.py").write_text(OLD_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    host = load(tmp_path, caplog, Recorder="old_recorder:MirrorPlugin")
    assert list(host.plugins) == ["Recorder"]
    host.emit(TaskStopEvent("debian", 42, 23))
    host.stop(5, nap)
    assert host.plugins["Recorder"].seen == [("debian", 42, 23)]  # type: ignore[attr-defined]


# --- one JSON shape ----------------------------------------------------------------------

def view(name: str, **changes: object) -> TaskView:
    base = TaskView(
        name=name, type="rsync", enabled=True, state=IDLE,
        upstreams=("rsync://a.example.org/x/", "rsync://b.example.org/x/"), upstream=None,
        localdir=f"/srv/{name}", schedule="0 * * * *", pid=None, stage=None, stages=None,
        timing=CronSchedule.parse("0 * * * *"), received_bytes=None,
        started=None, log_path=None, last_start=None, last_end=None, last_success=None,
        duration=None, result=None, exit_code=None, signal=None, consecutive_failures=0,
        failures_total=0, size=None, next_run=NOW + 1800)
    return replace(base, **changes)  # type: ignore[arg-type]


SNAPSHOT = Snapshot(
    taken=NOW, zone=timezone.utc, logdir="/var/log/mirror", emails=(),
    tasks=(
        view("busy", state=RUNNING, pid=4242, stage=2, stages=2, started=NOW - 60,
             upstream="rsync://b.example.org/x/"),
        view("debian", result="failed", exit_code=23, last_start=NOW - 400, last_end=NOW - 300,
             duration=100.0, consecutive_failures=2, failures_total=3, size=5 * 1024**3,
             upstream="rsync://a.example.org/x/", last_success=NOW - 86400),
        view("fresh"),
        view("off", enabled=False, state="disabled", next_run=None),
    ),
    queue=(QueueView("debian", "retry", NOW + 60, 10), QueueView("fresh", "run", NOW + 1800, 10)))


def test_the_control_reply_and_the_api_give_each_task_the_same_object():
    reply = status_reply(SNAPSHOT)
    document = api_document(SNAPSHOT)
    json.dumps(reply)  # JSON-ready, both
    json.dumps(document)
    assert reply["ok"] is True
    assert list(reply["tasks"]) == [task["name"] for task in document["tasks"]]  # type: ignore
    assert list(reply["tasks"].values()) == document["tasks"]  # type: ignore[attr-defined]
    assert run_reply(SNAPSHOT.tasks[0], SNAPSHOT.zone) == {"ok": True, **document["tasks"][0]}  # type: ignore[index,dict-item]
    assert queue_reply(SNAPSHOT.queue, SNAPSHOT.zone) == {"ok": True, "queue": document["queue"]}


def test_state_means_the_task_view_state_and_jobs_status_the_tunasync_word():
    tasks = {task.name: task_json(task, timezone.utc) for task in SNAPSHOT.tasks}
    assert {name: task["state"] for name, task in tasks.items()} == {
        "busy": "running", "debian": "idle", "fresh": "idle", "off": "disabled"}
    assert {name: task["jobs_status"] for name, task in tasks.items()} == {
        "busy": "syncing", "debian": "failed", "fresh": "none", "off": "disabled"}
    debian = tasks["debian"]
    assert (debian["last_result"], debian["exit_code"], debian["exit_status"]) == (
        "failed", 23, 23)
    assert debian["last_end"] == "2023-11-14T22:08:20+00:00"
    assert debian["last_end_ts"] == NOW - 300
    assert debian["message"] == "Partial transfer due to error"
    assert debian["size_human"] == "5.0G"
    assert tasks["fresh"]["upstream"] is None  # no run yet; upstreams lists the configured
    assert tasks["fresh"]["upstreams"] == ["rsync://a.example.org/x/", "rsync://b.example.org/x/"]
    assert tasks["off"]["next_run"] is None and tasks["off"]["next_run_ts"] is None


def test_mirrord_status_shows_the_unified_reply_as_before(capsys):
    print_status(status_reply(SNAPSHOT), as_json=False)
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "STATE", "PID", "STAGE", "STARTED", "LAST", "RESULT",
                              "EXIT", "LAST", "SUCCESS", "NEXT", "RUN", "UPSTREAM"]
    cells = {row.split()[0]: row.split() for row in rows}
    assert cells["busy"][1:5] == ["running", "4242", "2/2", "2023-11-14T22:12:20+00:00"]
    assert cells["debian"][1:8] == ["idle", "-", "-", "-", "failed", "23",
                                    "2023-11-13T22:13:20+00:00"]
    assert cells["fresh"][-1] == "-" and cells["off"][1] == "disabled"
    print_status(status_reply(SNAPSHOT), as_json=True)
    assert json.loads(capsys.readouterr().out) == status_reply(SNAPSHOT)["tasks"]
