# SPDX-License-Identifier: GPL-3.0-or-later
"""The kinds are found by their modules; task keys and plugin keys share Setting."""
from __future__ import annotations

from mirror.diagnostics import IssueCollector
from mirror.kinds import all_kinds, kind_named, kind_names, kinds_using, task_keys
from mirror.kinds.base import COMMON_SETTINGS, TaskKind
from mirror.pluginsettings import PluginSection, Setting, validate


def test_every_kind_module_is_found_in_rank_order():
    kinds = all_kinds()
    assert [kind.name for kind in kinds] == ["rsync", "simple", "command"]
    assert all(isinstance(kind, TaskKind) for kind in kinds)
    assert kind_named("command") is kinds[2] and kind_named("ftp") is None
    assert kind_names() == "rsync or simple or command"


def test_task_keys_are_the_common_keys_and_each_kinds_once():
    keys = task_keys()
    assert len(keys) == len(set(keys))
    assert set(keys) == {setting.key for setting in COMMON_SETTINGS} | {
        setting.key for kind in all_kinds() for setting in kind.settings}
    assert set(keys) == {"type", "enabled", "upstream[]", "command", "time", "rsyncdir",
                         "localdir", "args", "exclude", "twostage", "firststage", "timeout",
                         "priority", "autoretry", "successcodes", "interval", "randomdelay",
                         "iotimeout", "exec_before", "exec_on_success", "exec_on_failure",
                         "checkfile", "trace", "contimeout"}
    assert kinds_using("checkfile") == ("rsync",)
    assert kinds_using("upstream[]") == ("rsync", "command")
    assert kinds_using("rsyncdir") == ("rsync",)


def test_a_required_plugin_setting_is_reported_when_missing_or_empty():
    schema = (Setting("listen", str, "", "where", required=lambda: "HOST:PORT"),)
    issues = IssueCollector("plugin.ini")
    assert validate(schema, PluginSection("web", 3), issues) is None
    assert validate(schema, PluginSection("web", 3, {"listen": ""}, {"listen": 4}), issues) is None
    assert [str(issue) for issue in issues.issues] == [
        "plugin.ini:3: [web] listen: missing required key 'listen' (HOST:PORT)",
        "plugin.ini:4: [web] listen: missing required key 'listen' (HOST:PORT)"]
    fine = IssueCollector("plugin.ini")
    assert validate(schema, PluginSection("web", 3, {"listen": "h:1"}, {"listen": 4}), fine) == {
        "listen": "h:1"}
    assert fine.issues == []
