# SPDX-License-Identifier: GPL-3.0-or-later
"""Shell completion: bash run through COMP_WORDS, zsh through zle in a pty, no option left out."""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirror.cli import build_parser
from mirror.jobsmerge import build_parser as build_merge_parser

ROOT = Path(__file__).resolve().parent.parent.parent
BASH = ROOT / "completion" / "bash" / "mirrord"
ZSH = ROOT / "completion" / "zsh" / "_mirrord"
MERGE_BASH = ROOT / "completion" / "bash" / "mirror-merge-jobs"
MERGE_ZSH = ROOT / "completion" / "zsh" / "_mirror-merge-jobs"
COMPLETERS = {"mirrord": (BASH, "_mirrord"),
              "mirror-merge-jobs": (MERGE_BASH, "_mirror_merge_jobs")}


def complete(*words: str, cwd: Path = ROOT, command: str = "mirrord") -> list[str]:
    """What bash's completion function for *command* offers for the last of *words*."""
    script, function = COMPLETERS[command]
    text = (f"source {script}; COMP_WORDS=({command} {' '.join(words)}); "
            f"COMP_CWORD={len(words)}; {function}; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    result = subprocess.run(["bash", "-c", text], capture_output=True, text=True, cwd=cwd,
                            check=True)
    return [line for line in result.stdout.splitlines() if line]


def parser_options(parser: argparse.ArgumentParser | None = None) -> set[str]:
    return {option for action in (parser or build_parser())._actions
            for option in action.option_strings}


def merge(*words: str, cwd: Path = ROOT) -> list[str]:
    return complete(*words, cwd=cwd, command="mirror-merge-jobs")


def test_bash_completes_mirror_merge_jobs(tmp_path):
    assert set(merge("-")) == parser_options(build_merge_parser())
    assert merge("--t") == ["--timeout"]
    (tmp_path / "jobs.json").write_text("[]")
    assert merge("-o", "j", cwd=tmp_path) == ["jobs.json"]
    assert merge("--timeout", "") == []
    assert merge("http://mirror1:8000/jobs", "") == []  # the hosts' own URLs


def test_zsh_names_every_option_of_mirror_merge_jobs():
    named = set(re.findall(r"(--?[A-Za-z]+)", MERGE_ZSH.read_text()))
    assert parser_options(build_merge_parser()) <= named


def test_bash_completes_options():
    assert complete("--ch") == ["--check"]
    assert set(complete("-")) == parser_options()


def test_bash_completes_values():
    assert complete("-L", "w") == ["warning"]
    assert complete("-s", "") == ["stop", "reload", "restart"]


def test_bash_completes_task_names_from_the_config(tmp_path):
    (tmp_path / "mirror.ini").write_text("[general]\n[debian]\ntime = @daily\n"
                                         "[debian-security]\n[ubuntu]\n")
    assert complete("-c", str(tmp_path), "--run", "deb") == ["debian", "debian-security"]
    assert complete("-c", str(tmp_path / "mirror.ini"), "--cancel", "") == [
        "debian", "debian-security", "ubuntu"]


def test_bash_reads_the_config_path_as_typed(tmp_path, monkeypatch):
    """The words arrive as typed: ~ unexpanded, quotes and escapes kept, --config=DIR split."""
    home = tmp_path / "home"
    (home / "with space").mkdir(parents=True)
    (home / "with space" / "mirror.ini").write_text("[general]\n[debian]\n[ubuntu]\n")
    monkeypatch.setenv("HOME", str(home))

    def typed(*words: str) -> list[str]:
        array = " ".join(shlex.quote(word) for word in ("mirrord", *words))
        script = (f"source {BASH}; COMP_WORDS=({array}); COMP_CWORD={len(words)}; _mirrord; "
                  "printf '%s\\n' \"${COMPREPLY[@]}\"")
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                check=True)
        return [line for line in result.stdout.splitlines() if line]

    assert typed("-c", "~/with\\ space", "--run", "deb") == ["debian"]
    assert typed("-c", "'~/with space'".replace("~", str(home)), "--run", "") == [
        "debian", "ubuntu"]
    assert typed("--config", "=", '"~/with space/mirror.ini"'.replace("~", str(home)),
                 "--cancel", "u") == ["ubuntu"]


def test_bash_completes_config_paths(tmp_path):
    (tmp_path / "mirror.ini").write_text("")
    (tmp_path / "conf.d").mkdir()
    assert sorted(complete("-c", "", cwd=tmp_path)) == ["conf.d", "mirror.ini"]


def test_zsh_names_every_option():
    named = set(re.findall(r"(--?[A-Za-z]+)", ZSH.read_text()))
    assert parser_options() <= named


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
@pytest.mark.parametrize("script", [ZSH, MERGE_ZSH], ids=["mirrord", "mirror-merge-jobs"])
def test_zsh_script_parses(script):
    subprocess.run(["zsh", "-n", str(script)], check=True)


# An interactive zsh sources this, in a pseudo-terminal: TAB then runs the real completion
# system (compinit, _arguments, _mirrord) on the typed line, while a compadd wrapper records the
# matches that the completion functions add; the widget writes them to $MIRROR_MATCHES, clears
# the line and prints a numbered token, which the test waits for.
ZSH_SETUP = r"""
fpath=($MIRROR_FPATH $fpath)
autoload -Uz compinit && compinit -u -D
unsetopt autolist automenu beep
typeset -ga _mirror_matches
integer _mirror_done=0
compadd() {
    setopt localoptions extendedglob
    # -O, -A and -D calls only filter or test words; they add nothing, so nothing to record.
    if (( ${${@[1,${@[(i)(-|--)]}-1]}[(I)-[a-zA-Z]#[OAD]*]} )); then
        builtin compadd "$@"
        return
    fi
    local -a hits
    builtin compadd -O hits "$@"
    _mirror_matches+=("${hits[@]}")
    builtin compadd "$@"
}
_mirror_capture() {
    _mirror_matches=()
    zle complete-word
    print -rl -- "${_mirror_matches[@]}" >| $MIRROR_MATCHES
    BUFFER=
    print -rn -- "<<done $(( ++_mirror_done ))>>"
}
zle -N _mirror_capture
bindkey '^I' _mirror_capture
print -r -- "<<ready $(( 6 * 7 ))>>"
"""

needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")


class ZshCompletion:
    """`zsh -f -i` in a pseudo-terminal, whose TAB reports what completion offers.

    Everything, start-up included, must be done within `timeout` seconds; then zsh is killed.
    """

    def __init__(self, home: Path, timeout: float = 10.0) -> None:
        self.home = home
        self.deadline = time.monotonic() + timeout
        self.matches = home / "matches"
        (home / "setup.zsh").write_text(ZSH_SETUP)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
               "TERM": "dumb", "LC_ALL": "C", "MIRROR_FPATH": str(ZSH.parent),
               "MIRROR_MATCHES": str(self.matches), "MIRROR_SETUP": str(home / "setup.zsh")}
        self.fd, terminal = os.openpty()
        try:
            self.process = subprocess.Popen(["zsh", "-f", "-i"], stdin=terminal, stdout=terminal,
                                            stderr=terminal, env=env, cwd=home,
                                            start_new_session=True)
        except BaseException:
            os.close(self.fd)
            raise
        finally:
            os.close(terminal)
        self.output = b""
        self.done = 0
        try:
            # the typed text shows "$(( 6 * 7 ))", only zsh's answer shows "42"
            self.type("source $MIRROR_SETUP\r", b"<<ready 42>>")
        except BaseException:
            self.close()
            raise

    def type(self, keys: str, token: bytes) -> None:
        """Type keys, then read the terminal until token shows up."""
        os.write(self.fd, keys.encode())
        while token not in self.output:
            left = self.deadline - time.monotonic()
            readable = select.select([self.fd], [], [], max(left, 0))[0]
            try:
                data = os.read(self.fd, 4096) if readable else b""
            except OSError:  # EIO: zsh is gone
                data = b""
            if not data:
                raise AssertionError(f"zsh never printed {token!r} after {keys!r}; "
                                     f"the terminal ends with {self.output[-600:]!r}")
            self.output += data
        self.output = self.output.split(token, 1)[1]

    def complete(self, line: str) -> list[str]:
        """The sorted matches that TAB at the end of line offers."""
        self.done += 1
        self.type(line + "\t", f"<<done {self.done}>>".encode())
        return sorted({match for match in self.matches.read_text().splitlines() if match})

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)
        os.close(self.fd)


@pytest.fixture(scope="module")
def zsh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZshCompletion]:
    home = tmp_path_factory.mktemp("zsh")
    for config in (home / "conf", home / "with space"):
        config.mkdir()
        (config / "mirror.ini").write_text("[general]\n[debian]\ntime = @daily\n"
                                           "[debian-security]\n[ubuntu]\n")
    session = ZshCompletion(home)
    yield session
    session.close()


def choices(option: str) -> list[str]:
    action = next(action for action in build_parser()._actions
                  if option in action.option_strings)
    return sorted(action.choices)


@needs_zsh
def test_zsh_completes_options(zsh: ZshCompletion):
    assert zsh.complete("mirrord --ch") == ["--check"]
    assert set(zsh.complete("mirrord -")) == parser_options()
    # the actions exclude each other
    assert zsh.complete("mirrord --check --ru") == []


@needs_zsh
def test_zsh_completes_values(zsh: ZshCompletion):
    assert zsh.complete("mirrord -L ") == choices("-L")
    assert zsh.complete("mirrord --loglevel w") == ["warning"]
    assert zsh.complete("mirrord -s ") == choices("-s") == ["reload", "restart", "stop"]


@needs_zsh
def test_zsh_completes_task_names_from_the_config(zsh: ZshCompletion):
    config = shlex.quote(str(zsh.home / "conf"))
    assert zsh.complete(f"mirrord -c {config} --run deb") == ["debian", "debian-security"]
    assert zsh.complete(f"mirrord --config {config}/mirror.ini --cancel ") == [
        "debian", "debian-security", "ubuntu"]
    assert zsh.complete(f"mirrord -c {config} --run gen") == []


@needs_zsh
def test_zsh_completes_task_names_from_a_config_path_as_typed(zsh: ZshCompletion):
    home = shlex.quote(str(zsh.home))
    assert zsh.complete(r"mirrord -c ~/with\ space --run deb") == ["debian", "debian-security"]
    assert zsh.complete(f"mirrord -c {home}/'with space'/mirror.ini --cancel u") == ["ubuntu"]


@needs_zsh
def test_zsh_completes_mirror_merge_jobs(zsh: ZshCompletion):
    assert set(zsh.complete("mirror-merge-jobs -")) == parser_options(build_merge_parser())
    assert zsh.complete("mirror-merge-jobs --out") == ["--output"]
    assert zsh.complete("mirror-merge-jobs -o con") == ["conf"]  # the fixture's directory
    assert "http://" in zsh.complete("mirror-merge-jobs htt")  # zsh's own _urls
