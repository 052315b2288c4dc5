# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from mirror.diagnostics import IssueCollector
from mirror.inifile import parse_ini
from mirror.textdecode import decode_config_bytes


def read(text: str):
    issues = IssueCollector("mirror.ini")
    return parse_ini(text, issues), [str(issue) for issue in issues.issues]


def test_sections_entries_and_line_numbers():
    sections, problems = read(
        "; comment\n# another\n[general]\nLoadLimit = 2.0   # max load\n\n"
        "[debian]\nupstream[] = a.example.org\nupstream[] = b.example.org ; backup\n"
        "exclude = --exclude a\n  --exclude b\n"
    )
    assert problems == []
    general, debian = sections
    assert (general.name, general.line) == ("general", 3)
    assert [(e.key, e.value, e.line) for e in general.entries] == [("loadlimit", "2.0", 4)]
    assert [(e.key, e.value, e.line) for e in debian.entries] == [
        ("upstream[]", "a.example.org", 7), ("upstream[]", "b.example.org", 8),
        ("exclude", "--exclude a\n--exclude b", 9)]


def test_hash_inside_a_word_is_kept():
    sections, _ = read("[a]\nargs = --exclude=#tmp#\n")
    assert sections[0].entries[0].value == "--exclude=#tmp#"


def test_colon_delimiter_and_crlf():
    sections, problems = read("[a]\r\ntime: 0 * * * *\r\n")
    assert problems == [] and sections[0].entries[0].value == "0 * * * *"


def test_bad_lines_are_reported_with_their_numbers():
    _, problems = read("orphan = 1\n[a]\nnot an entry\n[]\n")
    assert problems == [
        "mirror.ini:1: 'orphan' comes before any [section]; put it under [general] or a task",
        "mirror.ini:3: cannot read 'not an entry': expected a [section] header, 'key = value', "
        "or a comment starting with ; or #",
        "mirror.ini:4: empty section name; write [general] or [TASKNAME]",
    ]


def test_gbk_file_is_decoded_with_a_warning():
    text = "; 北京交通大学开源镜像站配置文件，系统负载超过此值时只调度高优先级任务\n[general]\n"
    decoded, warning = decode_config_bytes(text.encode("gbk"))
    assert decoded == text
    assert "not UTF-8; read as GB" in warning


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(text):
    read(text)


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_decoder_raises_only_value_error(data):
    with contextlib.suppress(ValueError):
        decode_config_bytes(data)
