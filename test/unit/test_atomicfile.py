# SPDX-License-Identifier: GPL-3.0-or-later
"""write_atomically with a str and with pieces; TaskStatus's files byte for byte as before
(json.dumps of the whole document with indent=2), though written a task at a time."""
from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from datetime import timezone

import pytest

from mirror.atomicfile import write_atomically
from mirror.plugins.feeds import jobs_document, status_document
from mirror.plugins.taskstatus import (
    TaskStatus,
    array_pieces,
    jobs_values,
    object_pieces,
    status_members,
)
from mirror.views import Snapshot
from test.unit.test_builtin_plugins import VIEW


def leftovers(directory) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


def test_a_str_and_pieces_give_the_same_file(tmp_path):
    text = "first line\nzweite Zeile: äöü ✓\n"
    write_atomically(str(tmp_path / "whole"), text)
    write_atomically(str(tmp_path / "pieces"), iter([text[:7], text[7:20], "", text[20:]]),
                     mode=0o600)
    assert (tmp_path / "whole").read_bytes() == text.encode() == (tmp_path / "pieces").read_bytes()
    assert stat.S_IMODE(os.stat(tmp_path / "whole").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "pieces").st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_a_failure_while_pieces_come_leaves_the_old_file(tmp_path):
    path = tmp_path / "status.json"
    write_atomically(str(path), "old\n")

    def pieces():
        yield "new, half"
        raise TypeError("Object of type set is not JSON serializable")

    with pytest.raises(TypeError):
        write_atomically(str(path), pieces())
    assert path.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_a_temporary_swapped_for_a_link_does_not_pass_on_the_permissions(tmp_path):
    """The user who owns the directory replaces the temporary file with a symbolic link to a
    file of root's while the text is written: the mode is set on the descriptor, so the
    link's target keeps its own (os.chmod by name would have made it 0644)."""
    victim = tmp_path / "shadow"
    victim.write_text("secret\n")
    victim.chmod(0o600)
    directory = tmp_path / "www"
    directory.mkdir()

    def pieces():
        yield "first half, "
        (temporary,) = leftovers(directory)
        os.unlink(directory / temporary)
        os.symlink(victim, directory / temporary)
        yield "second half\n"

    write_atomically(str(directory / "status.json"), pieces(), mode=0o644)
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o600
    assert victim.read_text() == "secret\n"


def test_within_an_open_directory(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        write_atomically("trace", "serial 1\n", dir_fd=fd)
        write_atomically("trace", iter(["serial ", "2\n"]), mode=0o640, dir_fd=fd)
    finally:
        os.close(fd)
    assert (tmp_path / "trace").read_text() == "serial 2\n"
    assert stat.S_IMODE(os.stat(tmp_path / "trace").st_mode) == 0o640
    assert leftovers(tmp_path) == []


def snapshot(count: int) -> Snapshot:
    """*count* tasks in every state the files show, some names and upstreams not ASCII."""
    variants = [
        {},
        {"state": "running", "pid": 4242, "stage": 1, "stages": 2, "started": 1_700_000_000.5,
         "last_start": 1_699_990_000.0},
        {"result": "success", "exit_code": 0, "last_start": 1_699_000_000.0,
         "last_end": 1_699_000_360.25, "last_success": 1_699_000_360.25, "duration": 360.25,
         "size": 123_456_789_012, "next_run": 1_700_003_600.0},
        {"result": "failed", "exit_code": 23, "consecutive_failures": 3, "failures_total": 7,
         "upstream": "rsync://ミラー.example.org/debian/", "last_end": 1_699_500_000.0},
        {"result": "timeout", "signal": "SIGTERM", "type": "simple", "upstream": None},
        {"state": "disabled", "enabled": False},
    ]
    tasks = tuple(replace(VIEW, name=f"täsk{index:04d}", **variants[index % len(variants)])
                  for index in range(count))
    return Snapshot(taken=1_700_000_100.0, zone=timezone.utc, tasks=tasks, queue=(),
                    logdir="/var/log/mirror", emails=("root@example.org",))


def dumped(document: object) -> bytes:
    """What TaskStatus wrote before: the whole document's text at once."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


@pytest.mark.parametrize("count", [0, 1, 2, 1000])
def test_taskstatus_writes_what_json_dumps_wrote(tmp_path, count):
    taken = snapshot(count)
    status = tmp_path / "status" / "task_status.json"
    jobs = tmp_path / "jobs.json"

    class Host:
        state_directory = str(tmp_path / "status")

        @staticmethod
        def events_pending() -> int:
            return 0

        @staticmethod
        def snapshot():
            return taken

        def register_event_handler(self, *_args) -> None:
            pass

    plugin = TaskStatus("TaskStatus")
    plugin.host = Host()
    plugin.settings = {"status_file": "", "jobs_file": str(jobs)}
    plugin.enable()
    plugin.on_change()
    assert status.read_bytes() == dumped(status_document(taken))
    assert jobs.read_bytes() == dumped(jobs_document(taken))
    assert leftovers(tmp_path) == leftovers(status.parent) == []


def test_the_documents_are_made_one_task_at_a_time():
    taken = snapshot(3)
    members = status_members(taken)
    assert next(members)[0] == "täsk0000"
    assert list(members) == list(status_document(taken).items())[1:]
    assert list(jobs_values(taken)) == jobs_document(taken)


ODD = [{}, [], "a string: ✓", 3.5, None, True, float("nan"), {"": ""},
       {"nested": {"empty": {}, "list": [[], [1, 2.0, None, {"deep": [{}]}]],
                   "esc": "\"\\\n\t\x00\u2028", "ü": -1e300}}]


@pytest.mark.parametrize("members", [[], [("only", 1)], [(f"k{index}", value)
                                                         for index, value in enumerate(ODD)]])
def test_odd_objects_are_written_as_json_dumps_wrote_them(members):
    pieces = list(object_pieces(iter(members)))
    assert len(pieces) == len(members) + 1
    assert "".join(pieces).encode("utf-8") == dumped(dict(members))


@pytest.mark.parametrize("values", [[], [1], ODD, [ODD, [ODD]]])
def test_odd_arrays_are_written_as_json_dumps_wrote_them(values):
    pieces = list(array_pieces(iter(values)))
    assert len(pieces) == len(values) + 1
    assert "".join(pieces).encode("utf-8") == dumped(values)


def test_a_document_that_cannot_be_written_is_logged(tmp_path, caplog):
    TaskStatus._write(str(tmp_path / "missing" / "status.json"), object_pieces([("a", 1)]))
    assert "cannot write" in caplog.text and not (tmp_path / "missing").exists()


def test_a_value_json_cannot_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "status.json"
    path.write_text("old\n")
    with pytest.raises(TypeError):
        TaskStatus._write(str(path), object_pieces([("a", 1), ("b", {1, 2})]))
    assert path.read_text() == "old\n"
    assert leftovers(tmp_path) == []
