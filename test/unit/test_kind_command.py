# SPDX-License-Identifier: GPL-3.0-or-later
"""The command kind: its section read into a TaskSpec, located errors, its one stage."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from mirror.check import render_check, task_row
from mirror.config import parse_mirror_ini
from mirror.kinds.command import CommandOptions
from mirror.task import GeneralSettings

TASK = """[general]
[tools]
type = command
command = sync
time = @daily
localdir = data/tools
"""


def load(text: str, tmp_path: Path):
    return parse_mirror_ini(text, "mirror.ini", tmp_path,
                            which=lambda name: f"/usr/bin/{name}" if name == "sync" else None)


def executable(tmp_path: Path, name: str = "sync.sh") -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_a_command_task(tmp_path):
    script = executable(tmp_path)
    config = load(TASK.replace("= sync", "= ./sync.sh") + "args = -v 'a b'\n"
                  "upstream[] = https://a.example.org/x\nupstream[] = -not an option\n",
                  tmp_path)
    assert config.issues == ()
    (task,) = config.tasks
    assert task.type == "command"
    assert task.options == CommandOptions(command=str(script), args=("-v", "a b"))
    assert task.upstreams == ("https://a.example.org/x", "-not an option")  # any text
    assert task.localdir == str(tmp_path / "data" / "tools")
    assert task.directories() == (task.localdir,)


def test_a_name_is_looked_up_on_path(tmp_path):
    config = load(TASK, tmp_path)
    assert config.issues == () and config.tasks[0].options.command == "/usr/bin/sync"


def test_one_stage_with_the_run_in_its_environment(tmp_path):
    executable(tmp_path)
    config = load(TASK.replace("= sync", "= ./sync.sh") + "upstream[] = -e x\n"
                  "upstream[] = https://b.example.org/\n", tmp_path)
    (task,) = config.tasks
    (stage,) = task.stages(0, "/var/log/mirror/tools.log")
    assert stage.argv == (str(tmp_path / "sync.sh"),)  # no upstream ever reaches the argv
    assert stage.environ == {
        "MIRROR_NAME": "tools", "MIRROR_LOCALDIR": str(tmp_path / "data" / "tools"),
        "MIRROR_UPSTREAM": "-e x", "MIRROR_LOGFILE": "/var/log/mirror/tools.log",
        "MIRROR_STAGE": "1"}
    assert task.stages(1)[0].environ["MIRROR_UPSTREAM"] == "https://b.example.org/"
    assert task.stages(2)[0].environ["MIRROR_UPSTREAM"] == "-e x"  # wraps around


def test_without_upstreams_the_upstream_is_empty(tmp_path):
    executable(tmp_path)
    (task,) = load(TASK.replace("= sync", "= ./sync.sh"), tmp_path).tasks
    assert task.upstreams == () and task.stages()[0].environ["MIRROR_UPSTREAM"] == ""


def test_success_is_zero_and_successcodes_only(tmp_path):
    executable(tmp_path)
    (task,) = load(TASK.replace("= sync", "= ./sync.sh") + "successcodes = 3\n",
                   tmp_path).tasks
    general = GeneralSettings(successcodes=(5,))
    assert [task.succeeded(code, general) for code in (0, 3, 5, 24, 1, None)] == [
        True, True, True, False, False, False]


@pytest.mark.parametrize("change, line, key, fragment", [
    (("localdir = data/tools\n", ""), 2, "localdir", "missing required key 'localdir'"),
    (("localdir = data/tools\n", "localdir =\n"), 6, "localdir",
     "missing required key 'localdir'"),
    (("command = sync\n", ""), 2, "command", "missing required key 'command'"),
    (("= sync", "= ./no-such-script"), 4, "command",
     "'./no-such-script' is not an executable file"),
    (("= sync", "= no-such-name"), 4, "command",
     "command 'no-such-name' not found on PATH"),
    (("time = @daily", "time = 61 * * * *"), 5, "time", "61"),
    (("time = @daily", "time = @daily\nargs = 'open"), 6, "args", "quotes are balanced"),
])
def test_errors_are_located(tmp_path, change, line, key, fragment):
    config = load(TASK.replace(*change), tmp_path)
    (error,) = config.errors
    assert str(error).startswith(f"mirror.ini:{line}: [tools] {key}: ")
    assert fragment in error.message
    assert config.tasks == ()


@pytest.mark.parametrize("key, value, users", [
    ("rsyncdir", "debian/", "rsync"), ("exclude", "--exclude x", "rsync"),
    ("twostage", "1", "rsync or simple"), ("firststage", "pool", "rsync or simple"),
])
def test_keys_of_other_kinds_are_ignored_with_a_warning(tmp_path, key, value, users):
    executable(tmp_path)
    config = load(TASK.replace("= sync", "= ./sync.sh") + f"{key} = {value}\n",
                  tmp_path)
    assert config.errors == () and len(config.tasks) == 1
    (warning,) = config.warnings
    assert str(warning) == f"mirror.ini:7: [tools] {key}: ignored: only {users} tasks use it"


def test_an_unknown_type_names_every_kind(tmp_path):
    config = load(TASK.replace("type = command", "type = ftp"), tmp_path)
    assert [error.message for error in config.errors if error.key == "type"] == [
        "'ftp' is not a task type (use rsync or simple or command; leave it out for rsync)"]


def test_check_shows_the_command_and_the_upstreams(tmp_path):
    script = executable(tmp_path)
    config = load(TASK.replace("= sync", "= ./sync.sh") + "upstream[] = https://a/\n"
                  "upstream[] = https://b/\n", tmp_path)
    since = datetime(2026, 7, 1, tzinfo=timezone.utc)
    row = task_row(config.sections[0], since, timezone.utc)
    assert (row["type"], row["argv"], row["upstreams"], row["localdir"]) == (
        "command", [[str(script)]], ["https://a/", "https://b/"],
        str(tmp_path / "data" / "tools"))
    report = {"tasks": [row]}
    table = render_check(config, report)
    assert f"https://a/ (+1 more) → {tmp_path / 'data' / 'tools'}" in table
