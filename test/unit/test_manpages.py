# SPDX-License-Identifier: GPL-3.0-or-later
"""The man pages: groff reads them without a warning, and they document every option and key.

mirrord.1 must name every option of mirror.cli.build_parser() in a .TP entry of OPTIONS (and
no option the parser lacks); mirror.ini.5 must document every key mirror.config accepts and
every Setting of the built-in plugins, under the heading of its section, with the defaults
the code uses.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mirror import __version__, jobsmerge
from mirror.cli import build_parser
from mirror.config import GENERAL_KEYS, parse_mirror_ini
from mirror.diagnostics import IssueCollector
from mirror.inifile import parse_ini
from mirror.kinds import DEFAULT_KIND, all_kinds, task_keys
from mirror.kinds.base import COMMON_SETTINGS
from mirror.kinds.rsync import DEFAULT_RSYNC_ARGS
from mirror.pluginsettings import ENABLED, check_plugin_sections, discover, read_sections
from mirror.task import GeneralSettings

ROOT = Path(__file__).resolve().parent.parent.parent
MAN = ROOT / "docs" / "man"
MIRRORD_1 = MAN / "mirrord.1"
MIRROR_INI_5 = MAN / "mirror.ini.5"
MERGE_JOBS_1 = MAN / "mirror-merge-jobs.1"
PAGES = (MIRRORD_1, MIRROR_INI_5, MERGE_JOBS_1)

GENERAL_HEADING = "THE [general] SECTION"
TASK_HEADING = "TASK SECTIONS"
# The man(7) macros (and the few requests) the pages may use; anything else is a mistake,
# such as a line of text that happens to start with a dot.
KNOWN_MACROS = {"TH", "SH", "SS", "TP", "PP", "LP", "P", "IP", "RS", "RE", "B", "I", "BR",
                "BI", "IB", "IR", "RB", "RI", "SM", "SB", "nf", "fi", "EX", "EE", "br", "sp"}
# Macros whose arguments alternate fonts and are set without spaces between them.
ALTERNATING = {"BR", "BI", "IB", "IR", "RB", "RI"}
ENDS_ENTRY = {"TP", "SH", "SS", "PP", "LP", "P", "IP"}
OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")


def groff() -> str:
    path = shutil.which("groff")
    if path is None:
        pytest.fail("groff is not installed; the man pages cannot be checked "
                    "(apt-get install groff-base)")
    return path


def run_groff(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "80"}
    return subprocess.run([groff(), *args], capture_output=True, text=True, env=environment,
                          check=False)


# --- reading the man source ------------------------------------------------------------------

_ESCAPES = (("\\-", "-"), ("\\(ti", "~"), ("\\(aq", "'"), ("\\(dq", '"'), ("\\(en", "-"),
            ("\\(em", "-"), ("\\(>=", ">="), ("\\(mu", "x"), ("\\(bu", "*"), ("\\&", ""),
            ("\\%", ""), ("\\ ", " "), ("\\e", "\\"))
_FONT = re.compile(r"\\f[BIRP]")
_ARGUMENT = re.compile(r'"((?:[^"]|"")*)"|(\S+)')


def unescape(text: str) -> str:
    """The text as a reader sees it: fonts dropped, the escapes the pages use resolved."""
    text = _FONT.sub("", text)
    for escape, plain in _ESCAPES:
        text = text.replace(escape, plain)
    return text


def macro_arguments(rest: str) -> list[str]:
    """A macro's arguments, split as groff splits them (double quotes group words)."""
    return [quoted.replace('""', '"') if quoted is not None and bare == "" else bare
            for quoted, bare in _ARGUMENT.findall(rest)]


def split_macro(line: str) -> tuple[str, list[str]] | None:
    """(name, arguments) of a control line, or None for a line of text."""
    if not line.startswith("."):
        return None
    name, _space, rest = line[1:].partition(" ")
    return name, macro_arguments(rest)


def line_text(line: str) -> str:
    """What one source line contributes to the text, escapes still in."""
    macro = split_macro(line)
    if macro is None:
        return line
    name, arguments = macro
    return "".join(arguments) if name in ALTERNATING else " ".join(arguments)


@dataclass
class Entry:
    """One .TP entry: its heading (.SH or .SS), its tag line and its body."""

    heading: str
    section: str
    tag_macro: str | None
    tag_arguments: list[str]
    tag: str
    body: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return unescape(" ".join([self.tag, *self.body]))


def read_entries(page: Path) -> list[Entry]:
    """Every .TP entry of *page*, with the .SH and latest .SS/.SH heading above it."""
    lines = page.read_text(encoding="ascii").splitlines()
    entries: list[Entry] = []
    heading = section = ""
    current: Entry | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.startswith(".\\\""):
            continue
        macro = split_macro(line)
        if macro is not None and macro[0] in ENDS_ENTRY:
            current = None
            name, arguments = macro
            if name in ("SH", "SS"):
                heading = unescape(" ".join(arguments))
                if name == "SH":
                    section = heading
            if name == "TP" and index < len(lines):
                tag_line = lines[index]
                index += 1
                tag_macro = split_macro(tag_line)
                current = Entry(heading, section, tag_macro[0] if tag_macro else None,
                                [unescape(argument) for argument in tag_macro[1]]
                                if tag_macro else [], line_text(tag_line))
                entries.append(current)
            continue
        if current is not None:
            current.body.append(line_text(line))
    return entries


def documented_keys(entries: list[Entry], heading: str) -> list[str]:
    """The keys documented under *heading*: the .TP entries whose tag line is ``.B key``."""
    return [entry.tag_arguments[0] for entry in entries
            if entry.heading == heading and entry.tag_macro == "B" and entry.tag_arguments]


def entry_for(entries: list[Entry], heading: str, key: str) -> Entry:
    found = [entry for entry in entries if entry.heading == heading
             and entry.tag_macro == "B" and entry.tag_arguments[:1] == [key]]
    assert len(found) == 1, f"{key!r} is documented {len(found)} times under {heading!r}"
    return found[0]


def example_blocks(page: Path, section: str) -> list[str]:
    """The .EX/.EE blocks under the .SH *section*, as a reader sees them."""
    blocks: list[str] = []
    current: list[str] | None = None
    heading = ""
    for line in page.read_text(encoding="ascii").splitlines():
        macro = split_macro(line)
        if macro is not None and macro[0] == "SH":
            heading = unescape(" ".join(macro[1]))
        elif macro is not None and macro[0] == "EX" and heading == section:
            current = []
        elif macro is not None and macro[0] == "EE" and current is not None:
            blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(unescape(line))
    return blocks


def parser_options(parser: argparse.ArgumentParser | None = None) -> set[str]:
    return {option for action in (parser or build_parser())._actions
            for option in action.option_strings}


def builtin_plugins() -> dict[str, type]:
    """The plugin classes of mirror's own entry points, by entry point name."""
    plugins = {entry.name: entry.load() for entry in discover()
               if entry.module.startswith("mirror.plugins")}
    assert {"TaskStatus", "Size", "SystemTask", "Notifier", "SlateFish"} <= set(plugins)
    return plugins


def plugin_heading(entries: list[Entry], name: str) -> str:
    headings = {entry.heading for entry in entries
                if entry.heading.startswith(f"[{name.lower()}]")}
    assert len(headings) == 1, f"mirror.ini.5 needs one .SS heading starting [{name.lower()}]"
    return headings.pop()


def default_text(value: object) -> str | None:
    """How the page writes a default, or None when it is written in words (none, no...)."""
    if value is None or isinstance(value, bool) or value in ("", ()):
        return None
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, tuple) and all(isinstance(item, int) for item in value):
        return ",".join(str(item) for item in value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        host, port = value
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    raise AssertionError(f"no rule for writing the default {value!r}")


def assert_default(entry: Entry, value: object) -> None:
    text = default_text(value)
    if text is None:
        return
    # "Default for rsync and simple tasks: rsync" where a default is only some kinds'.
    default = r"Default(?: for [a-z ]+ tasks)?: "
    assert re.search(default + re.escape(text) + r"(?!\d)", entry.text), (
        f"{entry.tag_arguments[0]}: the page should say 'Default: {text}' "
        f"(it says: {entry.text})")


# --- 1. groff reads both pages without a warning --------------------------------------------

@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_groff_reports_no_warning(page):
    result = run_groff("-man", "-ww", "-z", str(page))
    assert result.stderr == "", f"groff -man -ww -z {page.name}:\n{result.stderr}"
    assert result.returncode == 0


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_source_is_plain_man(page):
    """ASCII only (groff reads no UTF-8 without preconv), every control line a man(7) macro,
    and every option-like hyphen written as \\-."""
    text = page.read_bytes().decode("ascii")
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{page.name}:{number}: {line}"
        assert not line.startswith("'"), f"a line starting with ' is a control line: {where}"
        if line.startswith(".") and not line.startswith(".\\\""):
            name = line[1:].split(" ", 1)[0]
            assert name in KNOWN_MACROS, f"not a man(7) macro (protect the dot with \\&): {where}"
        if line.startswith(".\\\""):
            continue
        assert not re.search(r"(?<![\\\w])-", line), f"write hyphens as \\-: {where}"
        for option in re.findall(r"(?:\\-){1,2}[A-Za-z][\w.=\\-]*", line):
            assert "-" not in option.replace("\\-", ""), f"write {option} with \\- only: {where}"
    assert re.search(rf'^\.TH \S+ [158] \S+ "mirror {re.escape(__version__)}"', text,
                     re.MULTILINE), f"{page.name}: the .TH line should name mirror {__version__}"


# --- 2. mirrord.1 documents every option ---------------------------------------------------

def test_every_option_appears_in_mirrord_1():
    source = MIRRORD_1.read_text(encoding="ascii").replace("\\-", "-")
    missing = sorted(option for option in parser_options()
                     if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", source))
    assert not missing, f"mirrord.1 does not mention {missing}"


def test_options_section_has_an_entry_per_option():
    entries = [entry for entry in read_entries(MIRRORD_1) if entry.section == "OPTIONS"]
    tagged = {option for entry in entries for option in OPTION.findall(unescape(entry.tag))}
    known = parser_options()
    assert known - tagged == set(), f"OPTIONS lacks a .TP entry for {sorted(known - tagged)}"
    assert tagged - known == set(), f"OPTIONS documents unknown options {sorted(tagged - known)}"


def test_mirror_merge_jobs_1_has_an_entry_per_option():
    entries = [entry for entry in read_entries(MERGE_JOBS_1) if entry.section == "OPTIONS"]
    tagged = {option for entry in entries for option in OPTION.findall(unescape(entry.tag))}
    assert tagged == parser_options(jobsmerge.build_parser())
    default = next(entry for entry in entries if "--timeout" in unescape(entry.tag))
    assert f"Default: {jobsmerge.DEFAULT_TIMEOUT:g}." in default.text


def test_option_choices_are_documented():
    entries = [entry for entry in read_entries(MIRRORD_1) if entry.section == "OPTIONS"]
    for action in build_parser()._actions:
        if not action.choices:
            continue
        entry = next(entry for entry in entries
                     if set(action.option_strings) & set(OPTION.findall(unescape(entry.tag))))
        for choice in action.choices:
            assert re.search(rf"\b{re.escape(choice)}\b", entry.text), (
                f"{'/'.join(action.option_strings)}: the entry does not name {choice!r}")


# --- 3. mirror.ini.5 documents every key --------------------------------------------------

def test_every_general_key_is_documented():
    entries = read_entries(MIRROR_INI_5)
    documented = documented_keys(entries, GENERAL_HEADING)
    assert sorted(documented) == sorted(GENERAL_KEYS), (
        f"under {GENERAL_HEADING!r}: missing {sorted(set(GENERAL_KEYS) - set(documented))}, "
        f"unknown {sorted(set(documented) - set(GENERAL_KEYS))}")
    for setting in dataclasses.fields(GeneralSettings):
        assert_default(entry_for(entries, GENERAL_HEADING, setting.name), setting.default)


def test_every_task_key_is_documented():
    entries = read_entries(MIRROR_INI_5)
    documented = documented_keys(entries, TASK_HEADING)
    keys = task_keys()  # from the Settings of the common keys and of every kind
    assert sorted(documented) == sorted(keys), (
        f"under {TASK_HEADING!r}: missing {sorted(set(keys) - set(documented))}, "
        f"unknown {sorted(set(documented) - set(keys))}")
    for setting in (*COMMON_SETTINGS, *(setting for kind in all_kinds()
                                         for setting in kind.settings)):
        if isinstance(setting.default, tuple) and any(isinstance(item, str)
                                                      for item in setting.default):
            continue  # words (args): checked below
        assert_default(entry_for(entries, TASK_HEADING, setting.key), setting.default)
    for key, default in (("type", DEFAULT_KIND), ("command", "rsync"), ("enabled", 1)):
        assert_default(entry_for(entries, TASK_HEADING, key), default)
    args = entry_for(entries, TASK_HEADING, "args")
    assert DEFAULT_RSYNC_ARGS in args.text, "args: the page should give rsync's default args"


def test_every_task_kind_is_documented():
    """Each kind is named in the type entry, and each key says which kinds read it."""
    entries = read_entries(MIRROR_INI_5)
    type_entry = entry_for(entries, TASK_HEADING, "type")
    for kind in all_kinds():
        assert re.search(rf"\b{kind.name}\b", type_entry.text), f"type: {kind.name} is not named"
    common = {setting.key for setting in COMMON_SETTINGS}
    for key in set(task_keys()) - common:
        text = entry_for(entries, TASK_HEADING, key).text
        for kind in all_kinds():
            assert re.search(rf"\b{kind.name}\b", text), (
                f"{key}: the entry should say what {kind.name} tasks do with it")


def test_every_plugin_setting_is_documented():
    entries = read_entries(MIRROR_INI_5)
    for name, plugin in builtin_plugins().items():
        heading = plugin_heading(entries, name)
        settings = getattr(plugin, "SETTINGS", ())
        expected = {setting.key for setting in settings} | {ENABLED}
        documented = documented_keys(entries, heading)
        assert sorted(documented) == sorted(expected), (
            f"[{name.lower()}]: missing {sorted(expected - set(documented))}, "
            f"unknown {sorted(set(documented) - expected)}")
        assert_default(entry_for(entries, heading, ENABLED), 1)
        for setting in settings:
            assert_default(entry_for(entries, heading, setting.key), setting.default)


def test_the_examples_are_valid_config(tmp_path):
    mirror_ini, plugin_ini = example_blocks(MIRROR_INI_5, "EXAMPLE")
    config = parse_mirror_ini(mirror_ini, "mirror.ini", tmp_path,
                              which=lambda command: f"/usr/bin/{command}")
    assert [str(issue) for issue in config.issues] == []
    assert [task.name for task in config.tasks] == ["archlinux", "ubuntu", "cleanup"]
    issues = IssueCollector("plugin.ini")
    sections = read_sections(parse_ini(plugin_ini, issues))
    check_plugin_sections(sections, issues)
    assert [str(issue) for issue in issues.issues] == []


# --- 4. the pages render -------------------------------------------------------------------

@pytest.mark.parametrize(("page", "headings"), [
    pytest.param(MIRRORD_1, ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS",
                             "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"),
                 id="mirrord.1"),
    pytest.param(MIRROR_INI_5, ("NAME", "SYNOPSIS", "DESCRIPTION", "SYNTAX", GENERAL_HEADING,
                                TASK_HEADING, "SCHEDULE", "DURATIONS", "PLUGIN.INI", "EXAMPLE",
                                "SEE ALSO"),
                 id="mirror.ini.5"),
    pytest.param(MERGE_JOBS_1, ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS",
                                "EXAMPLES", "SEE ALSO"), id="mirror-merge-jobs.1"),
])
def test_pages_render(page, headings):
    result = run_groff("-man", "-Tutf8", "-P-cbou", str(page))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    for heading in headings:
        assert heading in lines, f"{page.name} renders without the heading {heading}"
    title = page.name.rsplit(".", 1)[0].upper()
    assert lines[0].startswith(f"{title}({page.suffix[1:]})"), lines[0]
    leftovers = [line for line in lines if re.search(r"\\f|\\\(|\\-", line)]
    assert not leftovers, f"unresolved escapes in {page.name}: {leftovers}"
