# SPDX-License-Identifier: GPL-3.0-or-later
"""Packaging: ``python -m build`` makes an sdist and a wheel; the wheel installs and works."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import mirror

ROOT = Path(__file__).resolve().parent.parent.parent
DATA = {  # where the wheel puts what is not Python, under the install prefix
    "share/bash-completion/completions/mirrord": "completion/bash/mirrord",
    "share/zsh/site-functions/_mirrord": "completion/zsh/_mirrord",
    "share/bash-completion/completions/mirror-merge-jobs": "completion/bash/mirror-merge-jobs",
    "share/zsh/site-functions/_mirror-merge-jobs": "completion/zsh/_mirror-merge-jobs",
    "share/man/man1/mirrord.1": "docs/man/mirrord.1",
    "share/man/man1/mirror-merge-jobs.1": "docs/man/mirror-merge-jobs.1",
    "share/man/man5/mirror.ini.5": "docs/man/mirror.ini.5",
    "lib/systemd/system/mirrord.service": "util/systemd/system/mirrord.service",
    "lib/systemd/system/mirrord@.service": "util/systemd/system/mirrord@.service",
    **{f"share/mirror/prometheus/{name}": f"util/prometheus/{name}"
       for name in ("mirror-rules.yml", "alertmanager.yml", "prometheus.yml",
                    "mirrord-targets.yml")},
}
CATALOG = "mirror/i18n/zh_CN/LC_MESSAGES/mirror.mo"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(sdist, wheel) built from a copy of the tracked files, as a clean clone has them."""
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name, follow_symlinks=False)
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(source)],
                   check=True, capture_output=True, timeout=900)
    (sdist,) = (work / "dist").glob("mirror-*.tar.gz")
    (wheel,) = (work / "dist").glob("mirror-*.whl")
    return sdist, wheel


@pytest.mark.slow
def test_the_wheel_holds_the_catalogs_and_the_data_files(built):
    _sdist, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        data = f"mirror-{mirror.__version__}.data/data/"
        for installed, source in DATA.items():
            assert data + installed in names, installed
            assert archive.read(data + installed) == (ROOT / source).read_bytes()
        assert CATALOG in names
        assert "mirror/plugins/slatefish/page.py" in names
        assert "mirror/kinds/command.py" in names and "mirror/py.typed" in names
        entry_points = archive.read(
            f"mirror-{mirror.__version__}.dist-info/entry_points.txt").decode()
    assert "[mirror.plugin.mirrorplugin]" in entry_points and "SlateFish" in entry_points
    assert "mirror-merge-jobs = mirror.jobsmerge:main" in entry_points


@pytest.mark.slow
def test_the_sdist_builds_everything_again(built):
    sdist, _wheel = built
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("setup.py", "pyproject.toml", "mirror/i18n/zh_CN/LC_MESSAGES/mirror.po",
                   *DATA.values(), "config/mirror.ini", "config/plugin.ini",
                   "config/demo/mirror.ini", "test/sample_plugin/pyproject.toml"):
        assert needed in names, needed
    assert not any(name.endswith(".mo") for name in names)  # compiled by the build, not shipped


@pytest.mark.slow
def test_the_wheel_in_a_fresh_venv_checks_the_example_config_clean(built, tmp_path):
    _sdist, wheel = built
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   timeout=600)
    mirrord = environment / "bin" / "mirrord"
    version = subprocess.run([str(mirrord), "-v"], capture_output=True, text=True, check=True,
                             cwd=tmp_path)
    assert version.stdout.strip() == f"mirrord {mirror.__version__}"
    for config in ("config", "config/demo"):
        check = subprocess.run([str(mirrord), "-c", str(ROOT / config), "--check"],
                               capture_output=True, text=True, cwd=tmp_path)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "0 errors, 0 warnings" in check.stdout
    assert (environment / "share" / "man" / "man1" / "mirrord.1").exists()
    chinese = subprocess.run([str(mirrord), "-c", str(tmp_path / "nowhere"), "--check"],
                             capture_output=True, text=True, cwd=tmp_path,
                             env=dict(os.environ, LANGUAGE="zh_CN", LANG="C.UTF-8"))
    assert chinese.returncode == 1
    english = subprocess.run([str(mirrord), "-c", str(tmp_path / "nowhere"), "--check"],
                             capture_output=True, text=True, cwd=tmp_path,
                             env=dict(os.environ, LANGUAGE="", LANG="C.UTF-8"))
    assert chinese.stdout != english.stdout and chinese.stdout.isascii() is False
