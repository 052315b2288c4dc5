# SPDX-License-Identifier: GPL-3.0-or-later
"""The Prometheus rules and example configurations in util/prometheus/, checked by Debian's
promtool and amtool: the rules load, their unit tests (test/prometheus/) pass, and the
examples are valid once their paths point at real files."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from test.prometheus_tools import SHIPPED, prometheus_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = SHIPPED / "mirror-rules.yml"
RULE_TESTS = ROOT / "test" / "prometheus" / "mirror-rules.test.yml"
ALERTS = ("MirrorStale", "MirrorSyncFailing", "MirrordDown", "MirrordThrottled",
          "MirrorDiskNearlyFull")
PER_TASK = ("MirrorStale", "MirrorSyncFailing", "MirrorDiskNearlyFull")


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_the_rules_load():
    checked = run(prometheus_tool("promtool"), "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout


def test_the_rule_unit_tests_pass_and_cover_every_alert():
    tested = run(prometheus_tool("promtool"), "test", "rules", RULE_TESTS.name,
                 cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    assert alerts == set(ALERTS)
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test.get("alert_rule_test", [])]
    for alert in ALERTS:  # each one fires somewhere and stays silent somewhere
        assert any(case["alertname"] == alert and case["exp_alerts"] for case in cases), alert
        assert any(case["alertname"] == alert and not case["exp_alerts"] for case in cases), alert


def test_every_alert_names_the_host_and_the_task():
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            for text in rule["annotations"]["summary"], rule["annotations"]["description"]:
                assert "{{ $labels.instance }}" in text, rule["alert"]
                if rule["alert"] in PER_TASK:
                    assert "{{ $labels.task }}" in text, rule["alert"]


def test_a_broken_rule_fails_its_unit_test(tmp_path):
    """The unit tests can fail: with the failure threshold moved, they do."""
    broken = RULES.read_text().replace("mirror_task_consecutive_failures{job=\"mirrord\"} >= 3",
                                       "mirror_task_consecutive_failures{job=\"mirrord\"} >= 4")
    assert broken != RULES.read_text()
    (tmp_path / "util" / "prometheus").mkdir(parents=True)
    (tmp_path / "util" / "prometheus" / RULES.name).write_text(broken)
    (tmp_path / "test" / "prometheus").mkdir(parents=True)
    shutil.copy(RULE_TESTS, tmp_path / "test" / "prometheus")
    tested = run(prometheus_tool("promtool"), "test", "rules", RULE_TESTS.name,
                 cwd=tmp_path / "test" / "prometheus")
    assert tested.returncode != 0 and "MirrorSyncFailing" in tested.stdout + tested.stderr


def test_the_example_prometheus_configuration_is_valid(tmp_path):
    config = yaml.safe_load((RULES.parent / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/usr/local/share/mirror/prometheus/mirror-rules.yml"]
    config["rule_files"] = [str(RULES)]
    targets = tmp_path / "mirrord-targets.yml"
    shutil.copy(RULES.parent / "mirrord-targets.yml", targets)
    config["scrape_configs"][0]["file_sd_configs"][0]["files"] = [str(targets)]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = run(prometheus_tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert len(yaml.safe_load(targets.read_text())) == 2


def test_the_example_alertmanager_configuration_is_valid():
    checked = run(prometheus_tool("amtool"), "check-config", str(RULES.parent / "alertmanager.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
