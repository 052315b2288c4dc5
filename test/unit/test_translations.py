# SPDX-License-Identifier: GPL-3.0-or-later
"""Translations: mirror.pot matches the code, the zh_CN catalogue is complete and compiled,
and mirrord speaks Chinese when asked to (and English otherwise).

The compiled catalogue (mirror.mo) is made by the build: ``pip install -e .``
writes it beside the .po file; run that again after editing the .po.
"""
from __future__ import annotations

import ast
import gettext
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from mirror import i18n
from mirror.config import load_config, with_plugin_checks
from mirror.locations import locate_config
from mirror.tables import display_width, format_table

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGE = ROOT / "mirror"
POT = PACKAGE / "i18n" / "mirror.pot"
PO = PACKAGE / "i18n" / "zh_CN" / "LC_MESSAGES" / "mirror.po"
MO = PO.with_suffix(".mo")
BRACE_FIELD = re.compile(r"\{[^{}]*\}")  # {name}, {name!r}, {size:g}
PERCENT_FIELD = re.compile(r"%(?:\([A-Za-z_]+\))?[sdr]")  # argparse's %s, %(prog)s
CHINESE = re.compile(r"[\u4e00-\u9fff]")
UPDATE = ("update them: pybabel extract … -o mirror/i18n/mirror.pot mirror, then "
          "pybabel update -i mirror/i18n/mirror.pot -d mirror/i18n -D mirror (see babel.cfg), "
          "and translate what is new")

BROKEN_MIRROR_INI = """\
[general]
colour = blue
logdir = ./logs

[debian]
upstream[] = mirror.example.org
rsyncdir = debian/
localdir = ./debian
time = 61 * * * *
timeout = 12x
"""


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle)


def translations(catalog: Catalog) -> dict[str, str]:
    return {str(message.id): str(message.string) for message in catalog if message.id}


def run_mirrord(*args: str, language: str) -> subprocess.CompletedProcess[str]:
    """``python -m mirror ARGS`` from the source tree, in *language* (``C`` for English)."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("LC_ALL", "LC_MESSAGES")}
    environment.update(LANGUAGE=language, LANG="C.UTF-8")
    return subprocess.run([sys.executable, "-m", "mirror", *args], capture_output=True,
                          text=True, cwd=ROOT, env=environment, timeout=60)


@pytest.fixture(scope="module")
def compiled() -> None:
    """The build compiled mirror.mo from the current mirror.po."""
    if not MO.exists():
        pytest.fail(f"{MO.relative_to(ROOT)} is missing: the build compiles it; "
                    "run pip install -e . (or pip install -e '.[test]')")
    with MO.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)
    stale = [msgid for msgid, msgstr in translations(read_catalog(PO)).items()
             if msgstr and catalog.gettext(msgid) != msgstr]
    if stale:
        pytest.fail(f"{MO.relative_to(ROOT)} is older than the .po ({len(stale)} messages "
                    f"differ, e.g. {stale[0]!r}); run pip install -e . again")


@pytest.fixture
def broken_config(tmp_path) -> Path:
    """A config with a bad duration, an unknown key and a bad time."""
    (tmp_path / "mirror.ini").write_text(BROKEN_MIRROR_INI)
    return tmp_path


# 1. mirrord speaks Chinese when asked to.

def test_check_reports_a_broken_config_in_chinese(compiled, broken_config):
    result = run_mirrord("-c", str(broken_config), "--check", language="zh_CN")
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout
    assert "错误（2）：" in output and "警告（1）：" in output
    assert "[general] colour: 未知的键“colour”（已知的键：emails, loadlimit," in output
    assert "[debian] time: “61 * * * *”不是 cron 表达式：" in output
    assert "五个字段：分钟 0-59，小时 0-23" in output
    assert "[debian] timeout: “12x”不是时长（请使用秒数，或按 d/h/m/s 顺序组合的各部分" in output
    assert "名称    类型   优先级  启用" in output  # the table's header, aligned by width
    assert "不调度（有错误）" in output
    assert "1 个任务：0 个有效（0 个已停用），1 个有错误；2 个错误，1 个警告" in output


def test_usage_errors_are_in_chinese(compiled):
    ours = run_mirrord("--json", language="zh_CN")
    assert ours.returncode == 2
    assert ours.stderr.startswith("用法：mirrord [-h]")
    assert "mirrord: 错误：--json 须与 --check、-t 或 --status 一起使用\n" in ours.stderr
    argparses = run_mirrord("-s", "halt", language="zh_CN")  # argparse's own message
    assert argparses.returncode == 2
    assert "mirrord: 错误：" in argparses.stderr
    assert "无效的选择：'halt'（请从 " in argparses.stderr


def test_help_is_in_chinese(compiled):
    result = run_mirrord("--help", language="zh_CN")
    assert result.returncode == 0
    assert "使开源镜像站与其上游保持同步。" in result.stdout
    assert "显示此帮助信息并退出" in result.stdout
    assert "检查配置，显示各任务将在何时运行，然后退出" in result.stdout


def test_english_is_the_default(broken_config):
    result = run_mirrord("-c", str(broken_config), "--check", language="C")
    assert result.returncode == 1
    assert "errors (2):" in result.stdout
    assert "timeout: '12x' is not a duration (use seconds or d/h/m/s parts" in result.stdout
    assert not CHINESE.search(result.stdout)
    usage = run_mirrord("--json", language="en_US")
    assert "mirrord: error: --json goes with --check, -t or --status" in usage.stderr


# 2. The catalogue is complete.

def test_the_chinese_catalogue_translates_every_message():
    template = read_catalog(POT)
    catalog = read_catalog(PO)
    assert str(catalog.locale) in ("zh_Hans_CN", "zh_CN")
    problems = []
    for message in template:
        if not message.id:
            continue
        msgid = str(message.id)
        translated = catalog.get(msgid)
        if translated is None or not translated.string:
            problems.append(f"untranslated: {msgid!r}")
        elif translated.fuzzy:
            problems.append(f"fuzzy: {msgid!r}")
        else:
            msgstr = str(translated.string)
            for field in (BRACE_FIELD, PERCENT_FIELD):
                if sorted(field.findall(msgid)) != sorted(field.findall(msgstr)):
                    problems.append(f"placeholders differ: {msgid!r} -> {msgstr!r}")
            if msgid.endswith("\n") != msgstr.endswith("\n"):
                problems.append(f"line end differs: {msgid!r} -> {msgstr!r}")
    extra = set(translations(catalog)) - set(translations(template))
    problems += [f"not in mirror.pot: {msgid!r}" for msgid in sorted(extra)]
    problems += [f"{message.id!r}: {error}" for message, errors in catalog.check()
                 for error in errors]
    assert not problems, "\n".join(problems)


def test_the_catalogue_is_chinese():
    for msgid, msgstr in translations(read_catalog(PO)).items():
        words = re.sub(r"%\(\w+\)s|\{[^{}]*\}|[^A-Za-z]", "", msgid)
        if len(words) > 12:  # not a bare example list or a name such as PID
            assert CHINESE.search(msgstr), (msgid, msgstr)


# 3. mirror.pot is up to date.

def test_the_template_holds_exactly_the_messages_of_the_code(tmp_path):
    try:
        from babel.messages.frontend import parse_mapping_cfg as parse_mapping
    except ImportError:  # Babel < 2.14
        from babel.messages.frontend import parse_mapping
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping(config)
    extracted = Catalog(project="mirror")
    for filename, lineno, msgid, comments, context in extract_from_dir(
            str(PACKAGE), method_map, options_map, keywords={"_": None}):
        extracted.add(msgid, locations=[(f"mirror/{filename}", lineno)],
                      auto_comments=comments, context=context)
    fresh = tmp_path / "mirror.pot"
    with fresh.open("wb") as handle:
        write_po(handle, extracted)
    in_code = set(translations(read_catalog(fresh)))
    in_template = set(translations(read_catalog(POT)))
    assert len(in_code) > 150
    assert in_code - in_template == set(), f"messages missing from mirror.pot; {UPDATE}"
    assert in_template - in_code == set(), f"mirror.pot has messages the code dropped; {UPDATE}"


# 4. What users see goes through gettext.

BROKEN_EVERYWHERE = """\
stray = 1
[general]
loadlimit = -1
httpports = 80,99999
emails = nobody
maxtasks = many
successcodes = 300
killgrace = 5x
colour = blue
statefle = /tmp/state.json
this line is broken

[]
[bad name!]
time = @sometimes
command = /nonexistent/rsync

[a]
type = ftp
time = * * *
enabled = maybe
priority = high
args = "unbalanced
twostage = 1
upstream[] = bad host!
command = nosuchcommand-xyz
[a]

[b]
time = 0 0 31 2 *
timeout = 1
timeout = 2
rsyncdir = x
localdir = /tmp
upstream[] = host
twostage = 1
firststage = ../up
priority = 50

[c]
type = simple
time = 0 0 1W * *
rsyncdir = foo
successcodes = x

[d]
time = 0 0 * * *

[General]
time = 0 0 * * *
"""
BROKEN_PLUGIN_INI = """\
[nosuchplugin]
[notifier]
host = a b
port = 0
user =
from = one@example.org, two@example.org
timeout = 0
hots = x
[slatefish]
listen = nohost
[systemtask]
keep_days = 0
schedule = 99 * * * *
[taskstatus]
status_file = relative/status.json
enabled = perhaps
"""


def load_issues(directory: Path) -> list[str]:
    """Every problem found in *directory*'s mirror.ini and plugin.ini, as shown to users."""
    config = with_plugin_checks(load_config(
        locate_config(str(directory)), which=lambda name: "/usr/bin/rsync" if name == "rsync"
        else None))
    return [issue.message for issue in config.issues]


def test_every_config_problem_is_reported_in_chinese(compiled, tmp_path):
    (tmp_path / "mirror.ini").write_text(BROKEN_EVERYWHERE)
    (tmp_path / "plugin.ini").write_text(BROKEN_PLUGIN_INI)
    english = load_issues(tmp_path)
    i18n.activate(["zh_CN"])
    try:
        chinese = load_issues(tmp_path)
    finally:
        i18n.activate()
    assert len(chinese) == len(english) >= 40
    untranslated = [message for message in chinese if not CHINESE.search(message)]
    assert not untranslated, "\n".join(untranslated)
    for english_message, chinese_message in zip(english, chinese):
        assert english_message != chinese_message
    assert english == load_issues(tmp_path)  # back to the environment's language


USER_FACING_EXCEPTIONS = {"ValueError", "ArgumentTypeError", "StartupError",
                          "DaemonUnavailable", "AlreadyRunning", "SystemExit"}
# Calls that show a message, and where the message is among their arguments: print,
# IssueCollector and argparse (error, warning), control's error(), _TaskValidator._error.
REPORTERS = {"print": 0, "error": 0, "warning": 0, "_error": 2}
LOGGERS = {"log", "logger", "logging"}
DEVELOPER_MESSAGES = {  # programming errors, never caused by a config or a command line
    "next_after needs an aware datetime",
    "unknown queue entry kind ",
}


def literal_text(node: ast.AST) -> str:
    """The text a message expression writes literally (not through ``_()``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(literal_text(value) for value in node.values)
    if isinstance(node, ast.BinOp):
        return literal_text(node.left) + literal_text(node.right)
    if isinstance(node, ast.IfExp):
        return literal_text(node.body) + literal_text(node.orelse)
    return ""


def call_name(call: ast.Call) -> tuple[str | None, bool]:
    """(the called name, whether it is a logger's method)."""
    function = call.func
    if isinstance(function, ast.Name):
        return function.id, False
    if isinstance(function, ast.Attribute):
        owner = function.value
        logger = ((isinstance(owner, ast.Name) and owner.id in LOGGERS)
                  or (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Attribute)
                      and owner.func.attr == "getLogger"))
        return function.attr, logger
    return None, False


def untranslated_messages(path: Path, root: Path = ROOT) -> list[str]:
    """``FILE:LINE: text`` for each literal message in *path* that is not wrapped in ``_()``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name, logger = call_name(node)
        if name in USER_FACING_EXCEPTIONS:
            messages = node.args[:1]
        elif name in REPORTERS and not logger:
            messages = node.args[REPORTERS[name]:REPORTERS[name] + 1]
        elif name in ("ArgumentParser", "add_argument", "add_argument_group"):
            messages = [keyword.value for keyword in node.keywords
                        if keyword.arg in ("help", "description", "title")]
            if name == "add_argument_group":
                messages += node.args[:1]
        else:
            continue
        for message in messages:
            text = literal_text(message)
            if (re.search(r"[A-Za-z]{2}", text.replace("mirrord", ""))
                    and text not in DEVELOPER_MESSAGES):
                found.append(f"{path.relative_to(root)}:{message.lineno}: {text!r}")
    return found


def test_user_facing_messages_go_through_gettext():
    sources = [path for path in sorted(PACKAGE.rglob("*.py"))
               if path.name != "stdlib.py" or path.parent.name != "i18n"]
    found = [problem for path in sources for problem in untranslated_messages(path)]
    assert not found, "wrap these in _():\n" + "\n".join(found)


def test_the_scan_finds_an_untranslated_message(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("raise ValueError(f'{x} is bad')\n"
                      "issues.error('no good', 3)\n"
                      "self._error(section, None, 'not this either')\n"
                      "log.error('a log line')\n"
                      "logging.getLogger(__name__).warning('another log line')\n"
                      "parser.add_argument('-x', help='an x')\n"
                      "issues.warning(_('fine'))\n"
                      "print(f'mirrord: {problem}')\n")
    found = [problem.split(": ", 1)[1] for problem in untranslated_messages(sample, tmp_path)]
    assert found == ["' is bad'", "'no good'", "'not this either'", "'an x'"]


def test_tables_align_wide_characters():
    table = format_table([["名称", "状态"], ["debian", "running"]]).splitlines()
    assert table == ["名称    状态", "debian  running"]
    assert display_width("名称") == 4 and display_width("e\u0301") == 1
