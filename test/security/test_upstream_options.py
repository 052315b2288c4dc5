# SPDX-License-Identifier: GPL-3.0-or-later
"""No part of an upstream reaches rsync as an option.

``upstream[] = -esh@host`` used to pass validation; rsync read it as ``-e sh@host::…``, synced
nothing, and the run was recorded as a success. Now the user, host and directories of an upstream
(and rsyncdir and firststage) may not start with ``-``, ``mirrord --check`` says so with file,
line, section and key, and every rsync stage has ``--`` before its source and destination, so
that even a source that looks like an option is read as a source. Real mirrord processes and a
real rsync daemon on 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mirror.cron import CronSchedule
from mirror.kinds.rsync import DEFAULT_RSYNC_ARGS, RsyncOptions, stage_argvs
from mirror.task import TaskSpec
from test.integration.conftest import RSYNC, general, wait_for

YEARLY = "0 0 1 1 *"  # these tasks run only when asked to


def rsync_section(name: str, upstream: str, localdir: str, **extra: str) -> str:
    lines = {"upstream[]": upstream, "rsyncdir": extra.pop("rsyncdir", "/"),
             "localdir": localdir, "time": YEARLY, **extra}
    return f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in lines.items())


def check(config: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TZ="UTC", LANGUAGE="en", LC_ALL="C.UTF-8")
    return subprocess.run([sys.executable, "-m", "mirror", "-c", str(config), "--check", *extra],
                          capture_output=True, text=True, env=env, timeout=60)


def tree(root: Path) -> dict[str, object]:
    """Every file (its bytes), directory and symlink (its target) under *root*."""
    found: dict[str, object] = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory) / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                found[relative] = ("dir",)
            else:
                found[relative] = path.read_bytes()
    return found


def headers(log_dir: Path, name: str) -> list[list[str]]:
    """The argv of every stage header in *name*'s task logs, in order."""
    argvs = []
    for log in sorted(log_dir.glob(f"{name}.log.*")):
        for line in log.read_text().splitlines():
            if line.startswith("=== mirrord ") and f" start {name} stage " in line:
                argvs.append(shlex.split(line.split("): ", 1)[1]))
    return argvs


# (what is written, the key, the line of that key, what the message says about it)
REFUSED = [
    ("upstream[] = -esh@host", "upstream[]",
     "'-esh@host' is not an upstream: the user name '-esh' starts with '-'"),
    ("upstream[] = -x@host", "upstream[]",
     "'-x@host' is not an upstream: the user name '-x' starts with '-'"),
    ("upstream[] = --rsh=sh", "upstream[]",
     "'--rsh=sh' is not an upstream: the host name '--rsh=sh' starts with '-'"),
    ("upstream[] = mirror@-oProxyCommand=sh", "upstream[]",
     "the host name '-oProxyCommand=sh' starts with '-'"),
    ("upstream[] = rsync://-e@host/m/", "upstream[]",
     "'rsync://-e@host/m/' is not an upstream: the user name '-e' starts with '-'"),
    ("upstream[] = rsync://-host:873/m/", "upstream[]",
     "the host name '-host' starts with '-'"),
    ("upstream[] = rsync://127.0.0.1/--delete/", "upstream[]",
     "'--delete' starts with '-'"),
    ("rsyncdir = -e sh/", "rsyncdir",
     "'-e sh/' is not a module and path on the upstream: '-e sh' starts with '-'"),
    ("rsyncdir = mirror/--delete", "rsyncdir", "'--delete' starts with '-'"),
    ("firststage = -x", "firststage",
     "'-x' is not a directory inside rsyncdir: '-x' starts with '-'"),
]


@pytest.mark.parametrize("written, key, fragment", REFUSED, ids=[case[0] for case in REFUSED])
def test_check_refuses_what_rsync_would_read_as_an_option(tmp_path, written, key, fragment):
    lines = {"upstream[]": "mirror.example.org", "rsyncdir": "debian/",
             "localdir": str(tmp_path / "mirror"), "time": YEARLY, "twostage": "1",
             "firststage": "pool"}
    chosen, value = (part.strip() for part in written.split("=", 1))
    lines[chosen] = value
    body = "".join(f"{name} = {text}\n" for name, text in lines.items())
    config = tmp_path / "mirror.ini"
    config.write_text("[general]\n[evil]\n" + body)
    line = 3 + list(lines).index(key)
    result = check(config)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    (error,) = [row for row in result.stdout.splitlines() if row.startswith(f"  {config}:")]
    assert error.startswith(f"  {config}:{line}: [evil] {key}: ")
    assert fragment in error and "may not start with '-'" in error
    assert "evil" in result.stdout and "not scheduled (errors)" in result.stdout
    report = json.loads(check(config, "--json").stdout)
    assert [(e["line"], e["section"], e["key"]) for e in report["errors"]] == [
        (line, "evil", key)]
    assert report["tasks"][0]["valid"] is False and report["tasks"][0]["argv"] == []


def test_the_daemon_will_not_start_with_such_an_upstream(mirrord, tmp_path):
    with pytest.raises(AssertionError, match="the user name '-esh' starts with '-'"):
        mirrord(general() + rsync_section("evil", "-esh@127.0.0.1", "@DIR@/mirror"))


def test_a_reload_with_such_an_upstream_changes_nothing(mirrord, rsync_daemon):
    good = general() + rsync_section("tree", rsync_daemon.url(), "@DIR@/mirror")
    daemon = mirrord(good)
    daemon.write_config(good.replace("@DIR@", str(daemon.directory))
                        .replace(rsync_daemon.url(), "-esh@127.0.0.1"))
    assert daemon.cli("-s", "reload").returncode == 0
    wait_for(lambda: "reload refused" in daemon.log(), what="the refused reload")
    assert "the user name '-esh' starts with '-'" in daemon.log()
    assert daemon.cli("--run", "tree", "--wait").returncode == 0
    assert headers(daemon.directory / "logs", "tree")[0][-2] == rsync_daemon.url()


def test_every_rsync_stage_run_has_a_double_dash_before_its_source(mirrord, rsync_daemon):
    url = rsync_daemon.url()
    daemon = mirrord(general() + rsync_section("tree", url, "@DIR@/tree")
                     + rsync_section("debian", url, "@DIR@/debian", rsyncdir="debian/",
                                     twostage="1", firststage="pool"))
    for name in ("tree", "debian"):
        result = daemon.cli("--run", name, "--wait")
        assert result.returncode == 0, result.stderr
    mirror = daemon.directory
    rsync = headers(mirror / "logs", "tree")
    debian = headers(mirror / "logs", "debian")
    assert [argv[-3:] for argv in rsync] == [["--", url, str(mirror / "tree")]]
    assert [argv[-3:] for argv in debian] == [
        ["--", f"{url}debian/pool/", str(mirror / "debian" / "pool")],
        ["--", f"{url}debian/", str(mirror / "debian")]]
    assert all(argv.count("--") == 1 for argv in rsync + debian)
    # What ran is exactly what --check shows.
    report = json.loads(check(daemon.config_path, "--json").stdout)
    shown = {row["name"]: row["argv"] for row in report["tasks"]}
    assert shown == {"tree": rsync, "debian": debian}
    assert tree(mirror / "tree") == tree(rsync_daemon.tree)
    assert tree(mirror / "debian") == tree(rsync_daemon.tree / "debian")


def test_a_source_that_looks_like_an_option_is_still_a_source(rsync_daemon, tmp_path):
    """The second line of defence, with the first taken away: a task built without the
    loader's checks, whose source starts with ``-``. After ``--`` rsync reads it as a
    source and syncs; without ``--`` it reads ``-e sh@…`` and syncs nothing, with exit 0."""
    task = TaskSpec(name="evil", enabled=True, time=YEARLY,
                    schedule=CronSchedule.parse(YEARLY),
                    options=RsyncOptions(command=RSYNC, rsyncdir="mirror/", args=(
                        *shlex.split(DEFAULT_RSYNC_ARGS), f"--port={rsync_daemon.port}")),
                    upstreams=("-esh@127.0.0.1",), localdir=str(tmp_path / "with"))
    (argv,) = stage_argvs(task)
    assert argv[-3:] == ["--", "-esh@127.0.0.1::mirror/", str(tmp_path / "with")]
    synced = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert synced.returncode == 0, synced.stderr
    assert tree(tmp_path / "with") == tree(rsync_daemon.tree)
    # The bug this guards against: the same argv without "--" is read as options.
    without = [word for word in argv if word != "--"]
    without[-1] = str(tmp_path / "without")
    (tmp_path / "without").mkdir()
    unsafe = subprocess.run(without, capture_output=True, text=True, timeout=60)
    assert unsafe.returncode == 0 and tree(tmp_path / "without") == {}
