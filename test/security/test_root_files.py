# SPDX-License-Identifier: GPL-3.0-or-later
"""Root started with -u must never be tricked by the mirror user's files.

The mirror user owns the directories of the pidfile, the state and the logs, and
here also the config. It plants symbolic links, FIFOs and config values that point
at root's files; root then starts ``mirrord -u USER``. No root-owned victim may be
truncated, written or chowned, and each start that cannot go on says why, without
a traceback.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from mirror.control import request
from mirror.lifecycle import REOPEN_CHECK_SECONDS
from test.integration.conftest import answers, general, wait_for
from test.security.conftest import SecondUser

VICTIM_TEXT = "root's precious file\n"


@pytest.fixture
def site(open_dir: Path, second_user: SecondUser) -> dict[str, Path]:
    """A root-owned victim file and directory, and the mirror user's own directory with a
    config it owns."""
    victim = open_dir / "victim"
    victim.write_text(VICTIM_TEXT)
    victim.chmod(0o640)
    victim_dir = open_dir / "victim-dir"
    victim_dir.mkdir(mode=0o755)
    home = open_dir / "home"
    home.mkdir()
    second_user.chown(home)
    config = home / "mirror.ini"
    config.write_text(general().replace("@DIR@", str(home)) +
                      "[quick]\ntype = simple\ncommand = /bin/true\ntime = 0 0 1 1 *\n")
    (home / "plugin.ini").write_text("[slatefish]\nenabled = 0\n")
    second_user.chown(config, home / "plugin.ini")
    return {"victim": victim, "victim_dir": victim_dir, "home": home}


def assert_untouched(site: dict[str, Path]) -> None:
    victim = site["victim"].stat()
    assert site["victim"].read_text() == VICTIM_TEXT
    assert (victim.st_uid, victim.st_gid, victim.st_mode & 0o7777) == (0, 0, 0o640)
    directory = site["victim_dir"].stat()
    assert (directory.st_uid, directory.st_gid) == (0, 0)
    assert list(site["victim_dir"].iterdir()) == []


def start_as_root(python: str, home: Path, user: SecondUser, *extra: str,
                  log: Path | None = None) -> subprocess.CompletedProcess:
    """``mirrord -D -u USER`` as root; it is expected to refuse, so it returns at once."""
    argv = [python, "-m", "mirror", "-c", str(home), "-P", str(home / "mirrord.pid"), "-D",
            "-l", str(log or home / "mirrord.log"), "-u", user.name, *extra]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                            env=dict(os.environ, TZ="UTC"))
    assert "Traceback" not in result.stderr, result.stderr
    return result


def plant(user: SecondUser, *commands: str) -> None:
    """The mirror user runs *commands* (sh) in its own right."""
    for command in commands:
        user.run(["/bin/sh", "-c", command], check=True)


@pytest.mark.parametrize(("name", "refusal"), [
    ("mirrord.pid", "{path}: is a symbolic link"),
    ("state.json", "cannot use the state file {path}: {path}: is a symbolic link"),
    ("mirrord.log", "cannot open the log file {path}: {path}: is a symbolic link"),
])
def test_a_symlink_to_a_root_file(site, second_user, python_for_users, name, refusal):
    home = site["home"]
    plant(second_user, f"ln -s {site['victim']} {home}/{name}")
    result = start_as_root(python_for_users, home, second_user)
    assert result.returncode == 1
    assert refusal.format(path=home / name) in result.stderr
    assert_untouched(site)


def test_a_symlinked_directory_on_the_way_to_the_log(site, second_user, python_for_users):
    # Root must not create a file it then gives away inside a directory of its own choice
    # (think /etc/cron.d), reached through a link the user placed.
    home = site["home"]
    plant(second_user, f"ln -s {site['victim_dir']} {home}/logs-link")
    result = start_as_root(python_for_users, home, second_user,
                           log=home / "logs-link" / "mirrord.log")
    assert result.returncode == 1
    assert "is a symbolic link in a directory that a user other than root can change" \
        in result.stderr
    assert_untouched(site)


def test_a_hard_link_to_a_root_file_is_not_taken(site, second_user, python_for_users):
    # With fs.protected_hardlinks = 0 the user could link root's file into its directory.
    home = site["home"]
    os.link(site["victim"], home / "mirrord.log")  # done as root: what the sysctl would allow
    try:
        result = start_as_root(python_for_users, home, second_user)
        assert result.returncode == 1
        assert "has 2 hard links" in result.stderr
    finally:
        (home / "mirrord.log").unlink()
    assert_untouched(site)


@pytest.mark.parametrize("key", ["logdir", "statefile"])
def test_a_config_naming_root_directories_gets_no_chown(site, second_user, python_for_users,
                                                        key):
    home = site["home"]
    target = site["victim_dir"] if key == "logdir" else site["victim_dir"] / "state.json"
    config = home / "mirror.ini"
    text = config.read_text()
    plant(second_user, f"sed -i 's|^{key} = .*|{key} = {target}|' {config}")
    assert config.read_text() != text
    result = start_as_root(python_for_users, home, second_user)
    assert result.returncode == 1
    assert f"is not writable (as root, run: install -d -o {second_user.name}" in result.stderr
    assert_untouched(site)


@pytest.mark.parametrize("kind", ["fifo", "devzero"])
def test_a_hostile_state_file_neither_hangs_nor_fills_memory(site, second_user,
                                                               python_for_users, kind):
    home = site["home"]
    if kind == "fifo":
        plant(second_user, f"mkfifo {home}/state.json")
    else:
        plant(second_user, f"ln -s /dev/zero {home}/state.json")
    result = start_as_root(python_for_users, home, second_user)  # times out if it hangs
    assert result.returncode == 1
    assert f"cannot use the state file {home}/state.json" in result.stderr
    assert_untouched(site)


def test_a_clean_start_as_the_user_creates_everything_as_that_user(site, second_user,
                                                                   python_for_users):
    home = site["home"]
    argv = [python_for_users, "-m", "mirror", "-c", str(home), "-P", str(home / "mirrord.pid"),
            "-D", "-l", str(home / "mirrord.log"), "-u", second_user.name]
    daemon = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, TZ="UTC"))
    try:
        wait_for(lambda: answers(home / "mirrord.sock") or daemon.poll() is not None,
                 what="the daemon")
        assert daemon.poll() is None, daemon.stderr.read()
        for name in ("mirrord.pid", "mirrord.sock", "mirrord.log", "state.json.lock", "logs"):
            assert (home / name).stat().st_uid == second_user.uid, name
    finally:
        daemon.terminate()
        assert daemon.wait(30) == 0
    assert (home / "state.json").stat().st_uid == second_user.uid
    assert_untouched(site)


def test_a_fifo_in_place_of_the_config_does_not_hang_the_start(site, second_user,
                                                                python_for_users):
    home = site["home"]
    plant(second_user, f"rm {home}/plugin.ini && mkfifo {home}/plugin.ini")
    result = start_as_root(python_for_users, home, second_user)  # times out if it hangs
    assert result.returncode == 1
    assert f"{home}/plugin.ini: not a regular file" in result.stderr
    assert_untouched(site)


def test_the_log_in_a_root_directory_survives_logrotate(site, second_user, python_for_users):
    """The daemon's user cannot create a file in root's log directory: after logrotate
    moves the log it keeps writing to the moved file, and takes the new one once logrotate
    ("create") has made it."""
    home = site["home"]
    logs = home.parent / "root-logs"
    logs.mkdir(mode=0o755)
    log = logs / "mirrord.log"
    argv = [python_for_users, "-m", "mirror", "-c", str(home), "-P", str(home / "mirrord.pid"),
            "-D", "-l", str(log), "-u", second_user.name]
    daemon = subprocess.Popen(argv, stderr=subprocess.DEVNULL, env=dict(os.environ, TZ="UTC"))

    def run_quick() -> None:
        reply = request(str(home / "mirrord.sock"), {"command": "run", "name": "quick",
                                                     "wait": True}, timeout=30)
        assert reply["ok"], reply

    try:
        wait_for(lambda: answers(home / "mirrord.sock"), what="the daemon")
        log.rename(logs / "mirrord.log.1")
        time.sleep(REOPEN_CHECK_SECONDS + 0.1)  # the path is checked once a second
        run_quick()
        moved = (logs / "mirrord.log.1").read_text()
        wait_for(lambda: "quick: success" in (logs / "mirrord.log.1").read_text(),
                 what="the run's line in the moved log")
        assert f"cannot reopen {log} after it moved" in moved
        log.touch()
        os.chown(log, second_user.uid, second_user.gid)  # what logrotate's "create" does
        time.sleep(REOPEN_CHECK_SECONDS + 0.1)  # the path is checked once a second
        run_quick()
        wait_for(lambda: "quick: success" in log.read_text(), what="the run in the new log")
    finally:
        daemon.terminate()
        assert daemon.wait(30) == 0
