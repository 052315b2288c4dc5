# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading mirror.ini: values, defaults, and errors located by file, line, section and key."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirror.config import load_config, parse_mirror_ini
from mirror.locations import locate_config
from mirror.task import GeneralSettings

GOOD_TASK = """
[debian]
upstream[] = ftp.de.debian.org
upstream[] = rsync://mirror.example.org/pub/
time = 10 0,6,13,20 * * *
rsyncdir = debian/
localdir = /srv/mirror/debian
"""


def write(tmp_path: Path, text: str | bytes, name: str = "mirror.ini") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def load(tmp_path: Path, text: str | bytes):
    return load_config(locate_config(str(write(tmp_path, text))))


def messages(config, severity: str = "error") -> list[str]:
    return [str(issue) for issue in config.issues if issue.severity == severity]


def test_general_values_and_task_defaults(tmp_path):
    config = load(tmp_path, "[general]\nemails = a@example.org, b@example.org\nloadlimit = 2.5\n"
                            "httpconn = 0\nhttpports = 80 8080\nlogdir = logs\nmaxtasks = 3\n"
                  + GOOD_TASK)
    assert messages(config) == [] and messages(config, "warning") == []
    assert config.general == GeneralSettings(
        emails=("a@example.org", "b@example.org"), loadlimit=2.5, httpconn=0,
        httpports=(80, 8080), logdir=str(tmp_path / "logs") + "/", maxtasks=3)
    (task,) = config.tasks
    assert task.upstreams == ("ftp.de.debian.org", "rsync://mirror.example.org/pub/")
    assert (task.type, task.enabled, task.priority, task.timeout, task.autoretry) == (
        "rsync", True, 10, 0, 0)
    assert task.options.args == ("--links", "--hard-links", "--times", "--verbose", "--delete",
                                 "--recursive", "--stats")
    assert task.options.command.endswith("/rsync") and os.path.isabs(task.options.command)


def test_missing_general_means_defaults_with_a_warning(tmp_path):
    config = load(tmp_path, GOOD_TASK)
    assert config.general == GeneralSettings()
    assert any("no [general] section" in message for message in messages(config, "warning"))
    assert messages(config) == []


def test_relative_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "sync.sh").write_text("#!/bin/sh\n")
    (tmp_path / "conf" / "sync.sh").chmod(0o755)
    path = write(tmp_path / "conf", "[general]\nlogdir = log\n[a]\ntype = simple\n"
                                    "command = ./sync.sh\ntime = @daily\nlocaldir = ../data\n"
                                    "[b]\nupstream[] = ./upstream\nupstream[] = ../up2\n"
                                    "time = @daily\nrsyncdir = tree\nlocaldir = mirror/tree\n")
    config = load_config(locate_config(str(path)))
    assert messages(config) == []
    simple, rsync = config.tasks
    assert simple.options.command == str(tmp_path / "conf" / "sync.sh")
    assert simple.localdir == str(tmp_path / "data")
    assert rsync.upstreams == (str(tmp_path / "conf" / "upstream"), str(tmp_path / "up2"))
    assert rsync.localdir == str(tmp_path / "conf" / "mirror" / "tree")
    assert config.general.logdir == str(tmp_path / "conf" / "log") + "/"


def test_keys_are_case_insensitive_and_inline_comments_stripped(tmp_path):
    config = load(tmp_path, "[general]\nLOADLIMIT = 2.0   # max load\n" +
                  GOOD_TASK.replace("time =", "Time =") + "priority = 3 ; high\n")
    assert messages(config) == []
    assert config.general.loadlimit == 2.0 and config.tasks[0].priority == 3


def test_a_task_with_an_error_is_not_scheduled_but_the_others_are(tmp_path):
    config = load(tmp_path, "[general]\n" + GOOD_TASK + GOOD_TASK.replace("[debian]", "[broken]")
                  .replace("10 0,6,13,20 * * *", "99 * * * *"))
    assert [task.name for task in config.tasks] == ["debian"]
    assert [section.name for section in config.sections] == ["debian", "broken"]
    assert len(config.errors) == 1


@pytest.mark.parametrize("addition, line, section, key, fragment", [
    ("timeout = 12x", 9, "debian", "timeout", "'12x' is not a duration"),
    ("autoretry = soon", 9, "debian", "autoretry", "is not a duration"),
    ("priority = high", 9, "debian", "priority", "'high' is not a whole number"),
    ("twostage = maybe", 9, "debian", "twostage", "not a yes/no value"),
    ("twostage = 1", 3, "debian", "firststage", "missing required key 'firststage'"),
    ("twostage = 1\nfirststage = ../etc", 10, "debian", "firststage", "not a directory inside"),
    ("type = ftp", 9, "debian", "type", "'ftp' is not a task type (use rsync or simple"),
    ("command = no-such-command-here", 9, "debian", "command", "not found on PATH"),
    ("command = ./missing.sh", 9, "debian", "command", "is not an executable file"),
    ("args = --exclude 'unbalanced", 9, "debian", "args", "check that quotes are balanced"),
    ("enabled = perhaps", 9, "debian", "enabled", "not a yes/no value"),
    ("upstream[] = not/absolute", 9, "debian", "upstream[]", "is not an upstream"),
    ("time = 0 * * * *", 9, "debian", "time", "set twice (first on line 6)"),
    ("successcodes = 23,300", 9, "debian", "successcodes", "'300' is not an exit code"),
])
def test_task_errors_are_located(tmp_path, addition, line, section, key, fragment):
    config = load(tmp_path, "[general]\n" + GOOD_TASK + addition + "\n")
    (error,) = config.errors
    assert (error.line, error.section, error.key) == (line, section, key)
    assert fragment in error.message
    assert str(error).startswith(f"{tmp_path / 'mirror.ini'}:{line}: [{section}] {key}: ")
    assert config.tasks == ()


@pytest.mark.parametrize("old, new, line, key, fragment", [
    ("upstream[] = ftp.de.debian.org", "upstream[] = -esh@host", 4, "upstream[]",
     "'-esh@host' is not an upstream: the user name '-esh' starts with '-'"),
    ("upstream[] = ftp.de.debian.org", "upstream[] = -x@host", 4, "upstream[]",
     "the user name '-x' starts with '-'"),
    ("upstream[] = ftp.de.debian.org", "upstream[] = --rsh=sh", 4, "upstream[]",
     "the host name '--rsh=sh' starts with '-'"),
    ("upstream[] = rsync://mirror.example.org/pub/", "upstream[] = rsync://-e@host/m/", 5,
     "upstream[]", "the user name '-e' starts with '-'"),
    ("upstream[] = rsync://mirror.example.org/pub/", "upstream[] = rsync://host/-m/", 5,
     "upstream[]", "'-m' starts with '-'"),
    ("rsyncdir = debian/", "rsyncdir = -e sh/", 7, "rsyncdir",
     "'-e sh/' is not a module and path on the upstream: '-e sh' starts with '-'"),
    ("rsyncdir = debian/", "rsyncdir = debian/--delete", 7, "rsyncdir",
     "'--delete' starts with '-'"),
])
def test_values_that_would_read_as_options_are_refused(tmp_path, old, new, line, key, fragment):
    config = load(tmp_path, "[general]\n" + GOOD_TASK.replace(old, new))
    (error,) = config.errors
    assert (error.line, error.section, error.key) == (line, "debian", key)
    assert fragment in error.message and "may not start with '-'" in error.message
    assert str(error).startswith(f"{tmp_path / 'mirror.ini'}:{line}: [debian] {key}: ")
    assert config.tasks == ()


def test_firststage_may_not_look_like_an_option(tmp_path):
    config = load(tmp_path, "[general]\n" + GOOD_TASK + "twostage = 1\nfirststage = -x/pool\n")
    (error,) = config.errors
    assert (error.line, error.key) == (10, "firststage")
    assert "'-x' starts with '-'" in error.message and "e.g. pool" in error.message
    # A simple task's firststage is its first stage's arguments: options on purpose.
    simple = load(tmp_path, "[general]\n[s]\ntype = simple\ncommand = sh\ntime = @daily\n"
                            "twostage = 1\nfirststage = -c 'exit 0'\n")
    assert messages(simple) == []


def test_local_upstreams_with_dashes_are_absolute_and_fine(tmp_path):
    config = load(tmp_path, "[general]\n" + GOOD_TASK.replace(
        "upstream[] = ftp.de.debian.org", "upstream[] = ./-upstream"))
    assert messages(config) == []
    assert config.tasks[0].upstreams[0] == str(tmp_path / "-upstream")


@pytest.mark.parametrize("key", ["args", "exclude"])
def test_a_bare_double_dash_in_rsync_words_is_refused(tmp_path, key):
    # rsync would stop reading options there, and take mirrord's own "--" as a file name.
    config = load(tmp_path, "[general]\n" + GOOD_TASK + f"{key} = --verbose -- --delete\n")
    (error,) = config.errors
    assert (error.line, error.section, error.key) == (9, "debian", key)
    assert "a bare '--' ends rsync's options early" in error.message


@pytest.mark.parametrize("missing", ["time", "rsyncdir", "localdir", "upstream[]"])
def test_missing_required_keys(tmp_path, missing):
    text = "\n".join(line for line in GOOD_TASK.splitlines()
                     if not line.startswith(missing.replace("[]", "")))
    config = load(tmp_path, text)
    (error,) = config.errors
    assert (error.line, error.section, error.key) == (2, "debian", missing)
    assert f"missing required key '{missing}'" in error.message


def test_every_error_is_collected(tmp_path):
    config = load(tmp_path, "[general]\nloadlimit = lots\nmaxtasks = -1\n" + GOOD_TASK +
                  "timeout = 1x\npriority = p\n[../x]\ntime = 0 0 * * *\nrsyncdir = a\n"
                  "localdir = b\nupstream[] = h\n")
    assert [(e.line, e.section, e.key) for e in config.errors] == [
        (2, "general", "loadlimit"), (3, "general", "maxtasks"),
        (11, "debian", "timeout"), (12, "debian", "priority"), (13, "../x", None)]


@pytest.mark.parametrize("name", ["../x", "a/b", "a b", "..", "名字"])
def test_unsafe_task_names(tmp_path, name):
    config = load(tmp_path, GOOD_TASK.replace("[debian]", f"[{name}]"))
    (error,) = config.errors
    assert error.section == name and "is not a safe task name" in error.message


def test_unknown_key_is_a_warning_with_a_suggestion(tmp_path):
    config = load(tmp_path, "[general]\nloadlimt = 3\n" + GOOD_TASK + "timout = 1h\n")
    assert messages(config) == []
    assert [(w.line, w.key, w.message) for w in config.warnings] == [
        (2, "loadlimt", "unknown key 'loadlimt' (did you mean 'loadlimit'?)"),
        (10, "timout", "unknown key 'timout' (did you mean 'timeout'?)")]
    assert config.tasks[0].timeout == 0


def test_priority_out_of_range_is_clamped_with_a_warning(tmp_path):
    config = load(tmp_path, GOOD_TASK + "priority = 15\n")
    assert config.tasks[0].priority == 10
    assert any("15 is outside 1-10" in w.message for w in config.warnings)


def test_repeated_section_is_an_error(tmp_path):
    config = load(tmp_path, GOOD_TASK + GOOD_TASK)
    (error,) = config.errors
    assert (error.line, error.section) == (9, "debian") and "repeated" in error.message


def test_simple_task_ignores_rsync_keys_with_a_warning(tmp_path):
    config = load(tmp_path, "[general]\n[job]\ntype = simple\ncommand = true\ntime = @hourly\n"
                            "rsyncdir = x\n")
    assert messages(config) == [] and config.tasks[0].options.args == ()
    assert [w.key for w in config.warnings] == ["rsyncdir"]


def test_gbk_file_is_read_with_a_warning(tmp_path):
    comment = "; 北京交通大学开源镜像站配置文件，系统负载超过此值时只调度高优先级任务\n"
    text = comment + "[general]\n" + GOOD_TASK
    config = load(tmp_path, text.encode("gbk"))
    assert messages(config) == []
    assert "not UTF-8; read as GB" in config.warnings[0].message
    assert config.tasks[0].name == "debian"


@pytest.mark.parametrize("content, fragment", [
    (b"", "no sections"),
    (b"; only a comment\n\n", "no sections"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00binary", "binary file"),
    (b"[general]\n\x1b[31mcolour\n", "binary file"),
])
def test_unusable_files(tmp_path, content, fragment):
    config = load(tmp_path, content)
    (error,) = config.errors
    assert fragment in error.message and error.file == str(tmp_path / "mirror.ini")


def test_missing_file(tmp_path):
    config = load_config(locate_config(str(tmp_path / "nowhere")))
    (error,) = config.errors
    assert error.file == str(tmp_path / "nowhere" / "mirror.ini")
    assert "no such file" in error.message


def test_locate_config_defaults(tmp_path, monkeypatch):
    monkeypatch.setattr("mirror.locations.SYSTEM_CONFIG_DIR", str(tmp_path / "no-etc"))
    location = locate_config(None, {"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert location.mirror_ini == tmp_path / "xdg" / "mirror" / "mirror.ini"
    assert location.plugin_ini == tmp_path / "xdg" / "mirror" / "plugin.ini"
    monkeypatch.setattr("mirror.locations.SYSTEM_CONFIG_DIR", str(tmp_path))
    assert locate_config(None, {}).directory == tmp_path
    assert locate_config(str(tmp_path)).mirror_ini == tmp_path / "mirror.ini"


def test_plugin_ini_is_read_beside_mirror_ini(tmp_path):
    write(tmp_path, "[TaskStatus]\nstatus_file = /tmp/status.json\n", "plugin.ini")
    config = load(tmp_path, GOOD_TASK)
    assert list(config.plugins) == ["taskstatus"]
    assert config.plugins["taskstatus"].raw == {"status_file": "/tmp/status.json"}
    assert config.plugins["taskstatus"].lines == {"status_file": 2}


def test_production_config_checks_clean():
    path = Path(__file__).parent.parent / "data" / "production-0.8.4.ini"
    config = load_config(locate_config(str(path)))
    assert config.issues == ()
    assert len(config.tasks) == 45
    assert max(len(task.upstreams) for task in config.tasks) == 3


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_loader_never_raises_on_arbitrary_text(text):
    parse_mirror_ini(text, "mirror.ini", Path("/tmp"))


LINES = st.one_of(
    st.sampled_from(["[general]", "[debian]", "[x y]", "[]", "upstream[] = h", "time = * * * * *",
                     "rsyncdir = d", "localdir = l", "twostage = 1", "type = simple", "  cont",
                     "priority = 99", "timeout = 1h", "; c", "command = sh"]),
    st.builds(lambda key, value: f"{key} = {value}",
              st.sampled_from(["time", "timeout", "priority", "args", "enabled", "loadlimit",
                               "httpports", "emails", "firststage", "upstream[]", "exclude"]),
              st.text(max_size=20)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINES, max_size=25))
def test_loader_never_raises_on_ini_like_text(lines):
    parse_mirror_ini("\n".join(lines), "mirror.ini", Path("/tmp"))
