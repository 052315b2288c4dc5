# SPDX-License-Identifier: GPL-3.0-or-later
"""mirror.entrypoints finds what importlib.metadata.entry_points(group=...) finds.

Each case builds site directories under tmp_path, puts them on sys.path, and compares the
directory scan with importlib.metadata itself, in order: importlib is the specification.
The scan must also really have been used (not its fallback) where it claims to be sure.
"""
from __future__ import annotations

import email.message  # noqa: F401 -- importlib.metadata imports it late, after sys.path is set
import sys
import zipfile
from importlib import metadata
from importlib.machinery import PathFinder
from pathlib import Path

import pytest

from mirror import entrypoints
from mirror.entrypoints import EntryPoint, Malformed, Unsure, entry_points, scan

GROUP = "mirror.plugin.mirrorplugin"
OTHER = "console_scripts"


def dist(site: Path, directory: str, text: str | bytes | None) -> Path:
    """A metadata directory *directory* in *site* with *text* as its entry_points.txt."""
    info = site / directory
    info.mkdir(parents=True)
    name = directory.partition("-")[0].rpartition(".")[0] or directory.partition("-")[0]
    (info / ("PKG-INFO" if directory.endswith(".egg-info") else "METADATA")).write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8")
    if isinstance(text, bytes):
        (info / "entry_points.txt").write_bytes(text)
    elif text is not None:
        (info / "entry_points.txt").write_text(text, encoding="utf-8")
    return info


def triples(entries) -> list[tuple[str, str, str]]:
    return [(entry.name, entry.value, entry.group) for entry in entries]


def importlib_says(group: str) -> list[tuple[str, str, str]]:
    return triples(entrypoints.from_importlib(group))


def same_as_importlib(monkeypatch, path: list[str], *groups: str, fast: bool = True) -> None:
    """With *path* as sys.path, entry_points() equals importlib's answer for each group, and
    the scan alone gives it too (*fast*) or declines (not *fast*)."""
    monkeypatch.setattr(sys, "path", path)
    for group in groups or (GROUP, OTHER):
        expected = importlib_says(group)
        assert triples(entry_points(group)) == expected
        if fast:
            assert triples(scan(group, path, [PathFinder])) == expected
        else:
            with pytest.raises(Unsure):
                scan(group, path, [PathFinder])


def test_the_first_copy_of_a_distribution_on_sys_path_wins(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    dist(first, "Sample_Plugin-2.0.dist-info", f"[{GROUP}]\nRecorder = new_module:Recorder\n")
    # The same distribution, spelt otherwise (PEP 503): shadowed, whatever its version.
    dist(second, "sample.plugin-1.0.dist-info",
         f"[{GROUP}]\nRecorder = old_module:Recorder\nGone = old_module:Gone\n")
    dist(second, "other_plugin-1.0.dist-info", f"[{GROUP}]\nOther = other:Plugin\n")
    path = [str(tmp_path / "missing"), str(first), str(second)]
    same_as_importlib(monkeypatch, path)
    monkeypatch.setattr(sys, "path", path)
    assert triples(entry_points(GROUP)) == [("Recorder", "new_module:Recorder", GROUP),
                                            ("Other", "other:Plugin", GROUP)]


def test_two_copies_in_one_directory_follow_listdir_order(tmp_path, monkeypatch):
    site = tmp_path / "site"
    for version in ("1.0", "2.0", "3.0"):
        dist(site, f"twice-{version}.dist-info", f"[{GROUP}]\nTwice = twice_{version[0]}:P\n")
    dist(site, "Twice-4.0.egg-info", f"[{GROUP}]\nTwice = twice_4:P\n")
    same_as_importlib(monkeypatch, [str(site)])
    monkeypatch.setattr(sys, "path", [str(site)])
    assert len(entry_points(GROUP)) == 1


def test_egg_info_directories_with_and_without_a_version(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist(site, "legacy_plugin.egg-info", f"[{GROUP}]\nLegacy = legacy:Plugin\n")
    dist(site, "Older-0.5-py3.11.egg-info", f"[{OTHER}]\nolder = older:main\n[{GROUP}]\n"
                                            "Older = older.plugin:Main.Plugin [extra]\n")
    dist(site, "no_entry_points-1.0.dist-info", None)
    same_as_importlib(monkeypatch, [str(site)])
    monkeypatch.setattr(sys, "path", [str(site)])
    assert {entry.name for entry in entry_points(GROUP)} == {"Legacy", "Older"}


def test_the_text_is_read_as_importlib_reads_it(tmp_path, monkeypatch):
    site = tmp_path / "site"
    text = ("Before = any:Section\n"  # before the first header: ignored
            "# a comment\n\n"
            f"[{GROUP}]\r\n"
            "  Spaced   =   spaced.module : attr   \r\n"
            "Extras = extras.module:Plugin [one, two]\n"
            "Equals = weird.module:attr == 3\n"
            "=nameless\n"
            "Module = only.module\n"
            "    # indented comment\n"
            f"[ {GROUP} ]\n"  # not the group: the spaces stay in its name
            "NotThis = x:y\n"
            f"[[{GROUP}]]\n"  # the brackets are stripped: the group again
            "Again = again:Plugin\n"
            "[other]\n"
            "Other = x:y\n")
    dist(site, "texts-1.0.dist-info", text)
    dist(site, "latin-1.0.dist-info", f"[{GROUP}]\nLatin = lätin:Plügin\n")
    same_as_importlib(monkeypatch, [str(site)])
    monkeypatch.setattr(sys, "path", [str(site)])
    assert ("Again", "again:Plugin", GROUP) in triples(entry_points(GROUP))
    assert ("", "nameless", GROUP) in triples(entry_points(GROUP))


def test_a_malformed_file_is_logged_and_left_out_where_importlib_fails(tmp_path, monkeypatch,
                                                                       caplog):
    site = tmp_path / "site"
    dist(site, "good-1.0.dist-info", f"[{GROUP}]\nGood = good:Plugin\n")
    dist(site, "broken-1.0.dist-info", f"[{GROUP}]\nBroken = broken:Plugin\n[other]\nno equals\n")
    monkeypatch.setattr(sys, "path", [str(site)])
    with pytest.raises(Malformed, match=r"broken-1\.0\.dist-info.*'no equals' has no '='"):
        scan(GROUP, [str(site)], [PathFinder])
    with pytest.raises(TypeError):  # importlib.metadata gives up on every distribution
        importlib_says(GROUP)
    assert triples(entry_points(GROUP)) == [("Good", "good:Plugin", GROUP)]
    assert "broken-1.0.dist-info" in caplog.text and "ignored" in caplog.text


def test_a_shadowed_malformed_copy_is_never_read(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    dist(first, "plugin-2.0.dist-info", f"[{GROUP}]\nPlugin = plugin:Plugin\n")
    dist(second, "plugin-1.0.dist-info", f"[{GROUP}]\nno equals\n")
    same_as_importlib(monkeypatch, [str(first), str(second)])


def test_a_file_that_is_not_utf8_is_logged_and_left_out(tmp_path, monkeypatch, caplog):
    site = tmp_path / "site"
    dist(site, "good-1.0.dist-info", f"[{GROUP}]\nGood = good:Plugin\n")
    dist(site, "latin-1.0.dist-info", f"[{GROUP}]\nLatin = l\xe4tin:Plugin\n".encode("latin-1"))
    monkeypatch.setattr(sys, "path", [str(site)])
    with pytest.raises(Malformed, match="not UTF-8"):
        scan(GROUP, [str(site)], [PathFinder])
    with pytest.raises(UnicodeDecodeError):
        importlib_says(GROUP)
    assert triples(entry_points(GROUP)) == [("Good", "good:Plugin", GROUP)]
    assert "latin-1.0.dist-info" in caplog.text


def test_importlib_failing_where_the_scan_cannot_help_is_raised(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist(site, "broken-1.0.dist-info", f"[{GROUP}]\nno equals\n")
    archive = tmp_path / "empty.zip"
    zipfile.ZipFile(archive, "w").close()
    monkeypatch.setattr(sys, "path", [str(site), str(archive)])
    with pytest.raises(TypeError):
        entry_points(GROUP)


def test_unreadable_metadata_counts_as_none_but_still_shadows(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    (first / "shadow-1.0.dist-info").write_text("a file, not a directory")
    dist(first, "folder-1.0.dist-info", None)
    (first / "folder-1.0.dist-info" / "entry_points.txt").mkdir()
    dist(second, "shadow-0.1.dist-info", f"[{GROUP}]\nShadow = shadow:Plugin\n")
    dist(second, "folder-0.1.dist-info", f"[{GROUP}]\nFolder = folder:Plugin\n")
    dist(second, "seen-1.0.dist-info", f"[{GROUP}]\nSeen = seen:Plugin\n")
    same_as_importlib(monkeypatch, [str(first), str(second)])
    monkeypatch.setattr(sys, "path", [str(first), str(second)])
    assert triples(entry_points(GROUP)) == [("Seen", "seen:Plugin", GROUP)]


def test_a_zip_on_sys_path_is_left_to_importlib(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist(site, "plain-1.0.dist-info", f"[{GROUP}]\nPlain = plain:Plugin\n")
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zipped-1.0.dist-info/METADATA",
                        "Metadata-Version: 2.1\nName: zipped\nVersion: 1.0\n")
        zipped.writestr("zipped-1.0.dist-info/entry_points.txt",
                        f"[{GROUP}]\nZipped = zipped:Plugin\n")
    same_as_importlib(monkeypatch, [str(site), str(archive)], fast=False)
    monkeypatch.setattr(sys, "path", [str(site), str(archive)])
    assert {entry.name for entry in entry_points(GROUP)} == {"Plain", "Zipped"}


def test_eggs_and_odd_names_are_left_to_importlib(tmp_path, monkeypatch):
    egg = tmp_path / "Eggy-1.0-py3.11.egg"
    (egg / "EGG-INFO").mkdir(parents=True)
    (egg / "EGG-INFO" / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: Eggy\n"
                                               "Version: 1.0\n")
    (egg / "EGG-INFO" / "entry_points.txt").write_text(f"[{GROUP}]\nEggy = eggy:Plugin\n")
    same_as_importlib(monkeypatch, [str(egg)], fast=False)
    monkeypatch.setattr(sys, "path", [str(egg)])
    assert [entry.name for entry in entry_points(GROUP)] == ["Eggy"]

    upper = tmp_path / "upper"
    dist(upper, "Loud-1.0.DIST-INFO", f"[{GROUP}]\nLoud = loud:Plugin\n")
    same_as_importlib(monkeypatch, [str(upper)], fast=False)


def test_a_finder_with_distributions_of_its_own_is_left_to_importlib(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist(site, "plain-1.0.dist-info", f"[{GROUP}]\nPlain = plain:Plugin\n")

    class Finder:
        @staticmethod
        def find_spec(*_args):
            return None

        @staticmethod
        def find_distributions(context=None):
            return iter([metadata.PathDistribution(site / "plain-1.0.dist-info")])

    with pytest.raises(Unsure):
        scan(GROUP, [str(site)], [Finder, PathFinder])
    monkeypatch.setattr(sys, "meta_path", [Finder, *sys.meta_path])
    monkeypatch.setattr(sys, "path", [])
    assert triples(entry_points(GROUP)) == [("Plain", "plain:Plugin", GROUP)]
    with pytest.raises(Unsure):
        scan(GROUP, [Path(site)], [PathFinder])  # not a str


def test_the_real_environment_is_scanned_without_importlib(monkeypatch):
    for group in (GROUP, OTHER):
        assert triples(scan(group, sys.path, sys.meta_path)) == importlib_says(group)
    from mirror.pluginsettings import discover

    assert {entry.name for entry in discover()} >= {"Notifier", "Size", "SlateFish",
                                                    "SystemTask", "TaskStatus"}


def test_load_imports_the_module_and_follows_the_attributes():
    assert EntryPoint("x", "mirror.entrypoints:EntryPoint.load", GROUP).load() is EntryPoint.load
    assert EntryPoint("x", "mirror.entrypoints", GROUP).load() is entrypoints
    assert EntryPoint("x", "mirror.entrypoints : normalize  [extra] ", GROUP).load() \
        is entrypoints.normalize
    with pytest.raises(ModuleNotFoundError):
        EntryPoint("x", "mirror.no_such_module:Plugin", GROUP).load()
    with pytest.raises(AttributeError):
        EntryPoint("x", "mirror.entrypoints:NoSuchThing", GROUP).load()
    for value in ("not a module!", " mirror.entrypoints"):  # importlib's pattern fails too
        with pytest.raises(ValueError):
            EntryPoint("x", value, GROUP).load()
        with pytest.raises(AttributeError):
            metadata.EntryPoint("x", value, GROUP).load()
    # importlib's own agrees on what loads, and on the parts of the value.
    for value in ("a.b:C.d [x, y_2]", "a", "a : b", "a:b[]"):
        ours, theirs = EntryPoint("x", value, GROUP), metadata.EntryPoint("x", value, GROUP)
        assert (ours.module, ours.attr, ours.extras) == (theirs.module, theirs.attr,
                                                         theirs.extras)
    for value in ("mirror.entrypoints:EntryPoint.load", "mirror.entrypoints",
                  "mirror.entrypoints : normalize  [extra] "):
        assert metadata.EntryPoint("x", value, GROUP).load() == EntryPoint(
            "x", value, GROUP).load()


def test_names_are_normalized_as_importlib_normalizes_them():
    assert entrypoints.normalize("Sample.Plugin__x--Y") == "sample_plugin_x_y"
    assert entrypoints.normalize("Sample.Plugin__x--Y") == metadata.Prepared.normalize(
        "Sample.Plugin__x--Y")
