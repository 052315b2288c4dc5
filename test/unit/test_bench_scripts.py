# SPDX-License-Identifier: GPL-3.0-or-later
"""The bench/ scripts still fit the code they measure.

They run for minutes and only at the end of an issue, so a refactor that renames what one of
them calls would be found late (bench/checkfile once called a function that had gone). mypy
reads each script against the package: a name, an attribute or an argument that no longer
exists fails here. The scripts' own loose typing (Optional handles, lists of numbers) is not
what this is for, so those checks are off.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPTS = sorted(path for path in (ROOT / "bench").iterdir()
                 if path.is_file() and path.read_bytes().startswith(b"#!/usr/bin/env python3"))
LOOSE = ("union-attr", "arg-type", "assignment")


def test_every_bench_script_is_checked():
    assert {path.name for path in SCRIPTS} >= {"checkfile", "daemon", "load", "plugins", "run"}


@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_a_bench_script_uses_only_what_exists(script, tmp_path):
    disabled = [option for code in LOOSE for option in ("--disable-error-code", code)]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "/dev/null", "--follow-imports=silent",
         "--ignore-missing-imports", "--check-untyped-defs", "--no-error-summary",
         "--cache-dir", str(tmp_path / "cache"), *disabled, str(script)],
        capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
