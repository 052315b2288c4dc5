# SPDX-License-Identifier: GPL-3.0-or-later
"""The command kind with a real mirrord: the script gets the MIRROR_* variables, its localdir
exists before it starts, its upstreams never reach its argv, and a failed run makes the next
one use the next upstream."""
from __future__ import annotations

from pathlib import Path

from test.integration.conftest import general, load_state, wait_for

YEARLY = "0 0 1 1 *"  # these tasks run only when asked to

# Writes its environment, its arguments and whether its localdir exists into DUMP.N (N counts
# the runs), says something into its log, and fails when the upstream says "broken".
SCRIPT = """#!/bin/sh
n=$(ls "$1".* 2>/dev/null | wc -l)
{
  env
  echo "ARGC=$#"
  echo "ARGS=$*"
  test -d "$MIRROR_LOCALDIR" && echo "LOCALDIR_EXISTS=yes"
} > "$1.$n"
echo "script says hello from $MIRROR_NAME"
case "$MIRROR_UPSTREAM" in *broken*) exit 3 ;; esac
exit 0
"""


def script(tmp_path: Path) -> Path:
    path = tmp_path / "sync.sh"
    path.write_text(SCRIPT)
    path.chmod(0o755)
    return path


def command_task(name: str, command: Path, dump: Path, *upstreams: str, **extra: str) -> str:
    lines = [f"[{name}]", "type = command", f"command = {command}", f"args = {dump} --flag",
             "localdir = @DIR@/data/deeper", f"time = {YEARLY}"]
    lines += [f"upstream[] = {upstream}" for upstream in upstreams]
    lines += [f"{key} = {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def dumped(dump: Path, run: int) -> dict[str, str]:
    """The variables the script wrote in its *run*-th run (0 first)."""
    text = Path(f"{dump}.{run}").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_the_script_gets_each_variable_and_no_upstream_in_its_argv(mirrord, tmp_path):
    dump = tmp_path / "dump"
    upstream = "-e sh --delete https://mirror.example.org/pub/"  # would be options in an argv
    daemon = mirrord(general() + command_task("tools", script(tmp_path), dump, upstream))
    result = daemon.cli("--run", "tools", "--wait")
    assert result.returncode == 0, result.stderr
    seen = dumped(dump, 0)
    localdir = daemon.directory / "data" / "deeper"
    (log,) = (daemon.directory / "logs").glob("tools.log.*")
    assert seen["MIRROR_NAME"] == "tools"
    assert seen["MIRROR_LOCALDIR"] == str(localdir)
    assert seen["LOCALDIR_EXISTS"] == "yes"  # created, with its parents, before the stage
    assert seen["MIRROR_UPSTREAM"] == upstream
    assert seen["MIRROR_LOGFILE"] == str(log)
    assert seen["MIRROR_STAGE"] == "1"
    assert (seen["ARGC"], seen["ARGS"]) == ("2", f"{dump} --flag")
    assert "script says hello from tools" in log.read_text()
    assert "PATH" in seen  # added to the daemon's environment, not instead of it


def test_without_upstreams_the_variable_is_empty(mirrord, tmp_path):
    dump = tmp_path / "dump"
    daemon = mirrord(general() + command_task("local", script(tmp_path), dump))
    assert daemon.cli("--run", "local", "--wait").returncode == 0
    assert dumped(dump, 0)["MIRROR_UPSTREAM"] == ""


def test_a_failed_run_makes_the_next_one_use_the_next_upstream(mirrord, tmp_path):
    dump = tmp_path / "dump"
    broken, good = "https://broken.example.org/", "https://good.example.org/"
    daemon = mirrord(general() + command_task("flaky", script(tmp_path), dump, broken, good))
    failed = daemon.cli("--run", "flaky", "--wait")
    assert failed.returncode == 1 and "flaky ended: failed" in failed.stderr
    assert dumped(dump, 0)["MIRROR_UPSTREAM"] == broken
    assert daemon.status()["flaky"]["last_result"] == "failed"
    again = daemon.cli("--run", "flaky", "--wait")
    assert again.returncode == 0, again.stderr
    assert dumped(dump, 1)["MIRROR_UPSTREAM"] == good
    task = daemon.status()["flaky"]
    assert task["last_result"] == "success" and task["upstream"] == good
    wait_for(lambda: load_state(daemon.directory)["flaky"]["consecutive_failures"] == 0,
             what="the state file to record the success")  # its writes are coalesced
