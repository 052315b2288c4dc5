# SPDX-License-Identifier: GPL-3.0-or-later
"""Plugin discovery in a real environment agrees with importlib.metadata.

The sample third-party plugin is pip-installed into a directory of its own and put on
PYTHONPATH, as test_plugins does; this repository is installed editable (its dist-info in
site-packages, and mirror.egg-info beside the sources when it was built in place). A fresh
interpreter discovers the plugins without importlib.metadata, then asks importlib.metadata.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE = ROOT / "test" / "sample_plugin"

SCRIPT = textwrap.dedent("""
    import json, sys
    from mirror.entrypoints import scan
    from mirror.pluginsettings import ENTRY_POINT_GROUP, discover

    METADATA = ("importlib.metadata", "email", "csv", "configparser")
    found = [[entry.name, entry.value] for entry in discover()]
    imported = sorted(name for name in METADATA if name in sys.modules)
    scanned = [[entry.name, entry.value, entry.group]
               for entry in scan(ENTRY_POINT_GROUP, sys.path, sys.meta_path)]
    loaded = []
    for entry in discover():
        try:
            entry.load()
        except ImportError:
            continue
        loaded.append(entry.name)

    from importlib import metadata
    expected = [[entry.name, entry.value, entry.group]
                for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    print(json.dumps({"found": found, "imported": imported, "scanned": scanned,
                      "loaded": loaded, "expected": expected, "path": sys.path}))
""")


@pytest.fixture(scope="module")
def sample_site(tmp_path_factory) -> str:
    """test/sample_plugin, pip-installed as its own distribution into a directory."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("source") / "sample_plugin"
    shutil.copytree(SAMPLE, source)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)],
                   check=True, capture_output=True, timeout=300)
    assert list(target.glob("mirror_sample_plugin-0.1.dist-info"))
    return str(target)


def run_fresh(pythonpath: str, cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=dict(os.environ, PYTHONPATH=pythonpath))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("where", ["tree", "elsewhere"])
def test_discovery_matches_importlib_with_a_third_party_plugin(sample_site, tmp_path, where):
    # From the source tree (sys.path[0] holds mirror.egg-info, if built in place) and from
    # elsewhere (only site-packages' dist-info of the editable install).
    cwd = ROOT if where == "tree" else tmp_path
    report = run_fresh(f"{sample_site}{os.pathsep}{ROOT}", cwd)
    assert sample_site in report["path"]
    names = {name for name, _value in report["found"]}
    assert {"Recorder", "Starter", "Troublemaker", "TaskStatus", "SlateFish"} <= names
    assert ({tuple(pair) for pair in report["found"]}
            == {(name, value) for name, value, _group in report["expected"]})
    # The scan alone, in importlib's order, without importlib.metadata or email.
    assert report["scanned"] == report["expected"]
    assert report["imported"] == []
    assert set(report["loaded"]) == names  # each loads, as importlib's would


def test_a_second_copy_of_the_plugin_later_on_the_path_is_shadowed(sample_site, tmp_path):
    # An older copy of the same distribution after the first: importlib ignores it, and so
    # does discovery (its entry point would otherwise name a module that does not exist).
    older = tmp_path / "older"
    info = older / "Mirror.Sample_Plugin-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mirror-sample-plugin\n"
                                   "Version: 0.0.1\n")
    (info / "entry_points.txt").write_text(
        "[mirror.plugin.mirrorplugin]\nOldRecorder = gone_module:Recorder\n")
    report = run_fresh(os.pathsep.join((sample_site, str(older), str(ROOT))), tmp_path)
    assert "OldRecorder" not in {name for name, _value in report["found"]}
    assert report["scanned"] == report["expected"]
    report = run_fresh(os.pathsep.join((str(older), sample_site, str(ROOT))), tmp_path)
    assert "OldRecorder" in {name for name, _value in report["found"]}
    assert "Recorder" not in {name for name, _value in report["found"]}
    assert report["scanned"] == report["expected"]
