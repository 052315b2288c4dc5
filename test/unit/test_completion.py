# SPDX-License-Identifier: GPL-3.0-or-later
"""Shell completion: the bash function driven through COMP_WORDS, and no option left out."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mirror.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent.parent
BASH = ROOT / "completion" / "bash" / "mirrord"
ZSH = ROOT / "completion" / "zsh" / "_mirrord"


def complete(*words: str, cwd: Path = ROOT) -> list[str]:
    script = (f"source {BASH}; COMP_WORDS=(mirrord {' '.join(words)}); "
              f"COMP_CWORD={len(words)}; _mirrord; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=cwd,
                            check=True)
    return [line for line in result.stdout.splitlines() if line]


def parser_options() -> set[str]:
    return {option for action in build_parser()._actions for option in action.option_strings}


def test_bash_completes_options():
    assert complete("--ch") == ["--check"]
    assert set(complete("-")) == parser_options()


def test_bash_completes_values():
    assert complete("-L", "w") == ["warning"]
    assert complete("-s", "") == ["stop", "reload"]


def test_bash_completes_task_names_from_the_config(tmp_path):
    (tmp_path / "mirror.ini").write_text("[general]\n[debian]\ntime = @daily\n"
                                         "[debian-security]\n[ubuntu]\n")
    assert complete("-c", str(tmp_path), "--run", "deb") == ["debian", "debian-security"]
    assert complete("-c", str(tmp_path / "mirror.ini"), "--cancel", "") == [
        "debian", "debian-security", "ubuntu"]


def test_bash_completes_config_paths(tmp_path):
    (tmp_path / "mirror.ini").write_text("")
    (tmp_path / "conf.d").mkdir()
    assert sorted(complete("-c", "", cwd=tmp_path)) == ["conf.d", "mirror.ini"]


def test_zsh_names_every_option():
    named = set(re.findall(r"(--?[A-Za-z]+)", ZSH.read_text()))
    assert parser_options() <= named


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_parses():
    subprocess.run(["zsh", "-n", str(ZSH)], check=True)
