# SPDX-License-Identifier: GPL-3.0-or-later
"""A clean install: ``pip install .`` into a fresh venv gives a working ``mirrord``."""
from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

import pytest

import mirror

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv(tmp_path):
    source = tmp_path / "source"
    # Install from a copy of the tracked files only, as a clean clone would have them.
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name, follow_symlinks=False)
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(source)], check=True,
                   timeout=600)
    mirrord = environment / "bin" / "mirrord"
    version = subprocess.run([str(mirrord), "-v"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"mirrord {mirror.__version__}"
    check = subprocess.run([str(mirrord), "-c", str(source / "config" / "demo"), "--check"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "3 tasks: 3 valid" in check.stdout
    as_module = subprocess.run([str(python), "-m", "mirror", "-v"], capture_output=True,
                               text=True, check=True, cwd=tmp_path)
    assert as_module.stdout == version.stdout
