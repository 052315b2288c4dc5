# SPDX-License-Identifier: GPL-3.0-or-later
"""``mirrord --check`` as an admin runs it: a real process, real files, real exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import mirror
from test.cron_oracle import OracleCron

DATA = Path(__file__).parent.parent / "data"


def mirrord(*args: str, tz: str = "UTC", cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, TZ=tz, LANGUAGE="en", LC_ALL="C.UTF-8")
    return subprocess.run([sys.executable, "-m", "mirror", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=60)


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr


def test_version():
    result = mirrord("-v")
    assert result.returncode == 0 and result.stdout.strip() == f"mirrord {mirror.__version__}"


def test_console_script_is_installed():
    result = subprocess.run(["mirrord", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and mirror.__version__ in result.stdout


def test_production_config_checks_clean():
    result = mirrord("-c", str(DATA / "production-0.8.4.ini"), "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "TYPE", "PRI"]
    assert "45 tasks: 45 valid (0 disabled), 0 with errors; 0 errors, 0 warnings" in lines[-1]
    debian = next(line for line in lines if line.startswith("debian "))
    assert "rsync 2-stage" in debian and "10 0,6,13,20 * * *" in debian


def test_check_reads_a_config_directory(tmp_path):
    (tmp_path / "mirror.ini").write_text("[general]\n[job]\ntype = simple\ncommand = true\n"
                                         "time = @daily\n")
    result = mirrord("-c", str(tmp_path), "--check", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["tasks"][0]["name"] == "job"


EXPRESSIONS = ["30 2 * * *", "30 1 * * *", "*/15 * * * *", "0 * * * *", "* */2 * * *",
               "10 0,6,13,20 * * *", "45 1-3 * * *", "0 3 * * 0"]
SINCES = ["2026-01-15T09:17:00+00:00", "2026-07-15T22:03:00+00:00",
          "2026-03-08T06:45:00+00:00", "2026-03-29T00:20:00+00:00",
          "2026-10-25T01:10:00+00:00", "2026-11-01T05:20:00+00:00", "2026-11-01T06:20:00Z"]


@pytest.fixture(scope="module")
def oracle_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("oracle") / "mirror.ini"
    sections = [f"[t{index}]\ntype = simple\ncommand = true\ntime = {expression}\ntimeout = 1h\n"
                for index, expression in enumerate(EXPRESSIONS)]
    path.write_text("[general]\n" + "\n".join(sections))
    return path


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin", "America/New_York"])
@pytest.mark.parametrize("since", SINCES)
def test_json_next_runs_match_an_independent_computation(oracle_config, zone, since):
    result = mirrord("-c", str(oracle_config), "--check", "--json", "--since", since, tz=zone)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == [] and report["warnings"] == []
    moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
    for row, expression in zip(report["tasks"], EXPRESSIONS):
        expected = OracleCron(expression).next_after(moment, ZoneInfo(zone))
        assert row["next_run"] == expected.isoformat(), (zone, since, expression)


def test_naive_since_is_local_time():
    result = mirrord("-c", str(DATA / "production-0.8.4.ini"), "--check", "--json",
                     "--since", "2026-07-01T00:00", tz="Asia/Shanghai")
    rows = {row["name"]: row for row in json.loads(result.stdout)["tasks"]}
    assert rows["debian"]["next_run"] == "2026-07-01T00:10:00+08:00"


def test_json_shape():
    result = mirrord("-c", str(DATA / "production-0.8.4.ini"), "--check", "--json",
                     "--since", "2026-07-01T00:00:00+08:00")
    report = json.loads(result.stdout)
    assert set(report) == {"tasks", "errors", "warnings"}
    debian = next(row for row in report["tasks"] if row["name"] == "debian")
    assert {"name", "type", "enabled", "priority", "time", "next_run", "timeout", "autoretry",
            "argv"} <= set(debian)
    stage1, stage2 = debian["argv"]
    assert stage1[-2].endswith("::debian/pool/") and stage1[-1] == "/srv/mirror/debian/pool"
    assert "--delete" not in stage1 and "--delete-after" in stage2 and "--delay-updates" in stage2
    assert stage2[-2].endswith("::debian/") and stage2[-1] == "/srv/mirror/debian"
    settings = (debian["timeout"], debian["autoretry"], debian["priority"])
    assert settings == (12 * 3600 + 4 * 60, 0, 7)


BROKEN = [
    ("bad duration", "[general]\n[a]\ntype = simple\ncommand = true\ntime = @daily\n"
                     "timeout = 12x\n", 6, "[a] timeout", "'12x' is not a duration"),
    ("bad cron", "[general]\n[a]\ntype = simple\ncommand = true\ntime = 61 * * * *\n",
     5, "[a] time", "is not a cron expression"),
    ("bad priority", "[general]\n[a]\ntype = simple\ncommand = true\ntime = @daily\n"
                     "priority = urgent\n", 6, "[a] priority", "is not a whole number"),
    ("missing key", "[general]\n[a]\nupstream[] = h.example.org\ntime = @daily\n"
                    "rsyncdir = a/\n", 2, "[a] localdir", "missing required key 'localdir'"),
    ("unsafe name", "[general]\n[../etc]\ntype = simple\ncommand = true\ntime = @daily\n",
     2, "[../etc]", "is not a safe task name"),
    ("general error", "[general]\nmaxtasks = many\n", 2, "[general] maxtasks",
     "is not a whole number"),
]


@pytest.mark.parametrize("text, line, where, fragment",
                         [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_broken_configs_exit_1_with_line_and_key(tmp_path, text, line, where, fragment):
    path = tmp_path / "mirror.ini"
    path.write_text(text)
    result = mirrord("-c", str(path), "--check")
    assert result.returncode == 1
    assert_no_traceback(result)
    assert f"{path}:{line}: {where}" in result.stdout
    assert fragment in result.stdout
    as_json = json.loads(mirrord("-c", str(path), "--check", "--json").stdout)
    assert as_json["errors"][0]["line"] == line and fragment in as_json["errors"][0]["message"]


def test_unknown_key_is_only_a_warning(tmp_path):
    path = tmp_path / "mirror.ini"
    path.write_text("[general]\n[a]\ntype = simple\ncommand = true\ntime = @daily\ntimout = 1h\n")
    result = mirrord("-c", str(path), "--check")
    assert result.returncode == 0
    assert f"{path}:6: [a] timout: unknown key 'timout' (did you mean 'timeout'?)" in result.stdout


GBK_CONFIG = ("; 镜像站配置，北京交通大学开源软件镜像站，系统负载超过此值时只调度高优先级任务\n"
              "[general]\n[a]\ntype = simple\ncommand = true\ntime = @daily\n")


@pytest.mark.parametrize("content, fragment, code", [
    (GBK_CONFIG.encode("gbk"), "not UTF-8; read as GB", 0),
    (b"\xff\xfe\x00[\x00g\x00", "binary file", 1),
    (b"", "no sections", 1),
    (bytes(range(256)) * 4, "binary file", 1),
])
def test_unusual_files(tmp_path, content, fragment, code):
    path = tmp_path / "mirror.ini"
    path.write_bytes(content)
    result = mirrord("-c", str(path), "--check")
    assert result.returncode == code, result.stdout
    assert fragment in result.stdout and str(path) in result.stdout
    assert_no_traceback(result)


def test_missing_config(tmp_path):
    result = mirrord("-c", str(tmp_path / "absent"), "--check")
    assert result.returncode == 1 and "no such file" in result.stdout
    assert_no_traceback(result)


@pytest.mark.parametrize("args, fragment", [
    (["--check", "--since", "yesterday"], "'yesterday' is not an ISO-8601 time"),
    (["--json"], "--json goes with --check, -t or --status"),
    (["--since", "2026-01-01"], "--since goes with --check"),
    (["--wait"], "--wait goes with --run"),
    (["--check", "-t"], "not allowed with argument"),
    (["-s", "bounce"], "invalid choice: 'bounce' (choose from 'stop', 'reload', 'restart')"),
    (["-L", "loud"], "invalid choice: 'loud'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_usage_exits_2(args, fragment):
    result = mirrord(*args)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert_no_traceback(result)
