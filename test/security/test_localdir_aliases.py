# SPDX-License-Identifier: GPL-3.0-or-later
"""Tasks that write the same tree never run together, whatever the tree is called.

Three tasks on one tree: ``plain`` writes ``TREE``, ``alias`` writes ``LINK`` (a symlink to
``TREE``) and ``nested`` writes ``TREE/sub``. They used to be compared as strings and synced at
the same time. Now the daemon compares real paths, and a directory excludes the ones above and
below it. Real mirrord processes, real symlinks, real children that record when they run.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from test.integration.conftest import general, wait_for

YEARLY = "0 0 1 1 *"  # these tasks run only when asked to (or retried)


def recording_task(name: str, localdir: Path, spans: Path, seconds: float,
                   fail_first: Path | None = None, **extra: str) -> str:
    """A simple task whose child appends ``NAME start|end NANOSECONDS`` lines to *spans*
    around a sleep; with *fail_first*, its first run fails at once (and records nothing)."""
    def record(what: str) -> str:
        return f"echo {name} {what} $(date +%s%N) >> {spans}"

    script = f"{record('start')}; sleep {seconds}; {record('end')}"
    if fail_first is not None:
        script = f"[ -e {fail_first} ] || {{ touch {fail_first}; exit 1; }}; {script}"
    lines = {"type": "simple", "command": "sh", "args": f"-c '{script}'", "time": YEARLY,
             "localdir": str(localdir), **extra}
    return f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in lines.items())


def read_spans(spans: Path) -> dict[str, list[tuple[int, int]]]:
    """Each task's runs as (start, end) in nanoseconds, from what its children wrote."""
    starts: dict[str, int] = {}
    runs: dict[str, list[tuple[int, int]]] = {}
    for line in spans.read_text().splitlines():
        name, what, when = line.split()
        if what == "start":
            starts[name] = int(when)
        else:
            runs.setdefault(name, []).append((starts.pop(name), int(when)))
    assert not starts, f"runs that never ended: {starts}"
    return runs


def shown(path: Path) -> str:
    """A localdir as the daemon's messages show it: with its real path when that differs."""
    real = os.path.realpath(path)
    return str(path) if real == os.path.normpath(path) else f"{path} (→ {real})"


def overlaps(runs: dict[str, list[tuple[int, int]]]) -> list[tuple[str, str]]:
    spans = [(start, end, name) for name, found in runs.items() for start, end in found]
    return [(a, b) for i, (s1, e1, a) in enumerate(spans) for s2, e2, b in spans[i + 1:]
            if s1 < e2 and s2 < e1]


@pytest.fixture
def same_tree(tmp_path) -> tuple[Path, Path, Path]:
    """A real tree, a symlink to it and a directory inside it (real paths: /tmp may itself be
    a symlink somewhere, so every expectation goes through realpath)."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(tree)
    return tree, link, tree / "sub"


def test_due_runs_on_one_tree_wait_for_each_other(mirrord, tmp_path, same_tree):
    """plain runs (from --run); alias and nested come due while it runs (their autoretry),
    wait, and then run one after the other, never together."""
    tree, link, nested = same_tree
    spans = tmp_path / "spans"
    daemon = mirrord(
        general()
        + recording_task("plain", tree, spans, 3)
        + recording_task("alias", link, spans, 1, tmp_path / "alias.failed", autoretry="2s",
                         priority="1")
        + recording_task("nested", nested, spans, 1, tmp_path / "nested.failed",
                         autoretry="2s", priority="2"))
    for name in ("alias", "nested"):  # a failure first, so that a retry comes due in 2 s
        assert daemon.ask({"command": "run", "name": name, "wait": True})["result"] == "failed"
    assert daemon.ask({"command": "run", "name": "plain"})["ok"]
    seen: list[set[str]] = []

    def all_done() -> bool:
        status = daemon.status()
        seen.append({name for name, task in status.items() if task["state"] == "running"})
        return all(status[name]["last_result"] == "success" for name in status)

    wait_for(all_done, timeout=30, interval=0.05, what="the three runs")
    assert all(len(running) <= 1 for running in seen), seen
    runs = read_spans(spans)
    assert sorted(runs) == ["alias", "nested", "plain"] and overlaps(runs) == []
    # alias and nested waited for plain, then went in priority order.
    (plain_run,), (alias_run,), (nested_run,) = runs["plain"], runs["alias"], runs["nested"]
    assert plain_run[1] <= alias_run[0] and alias_run[1] <= nested_run[0]
    log = daemon.log()
    assert (f"alias wait: plain is writing {shown(tree)}, the same directory as {shown(link)}; "
            "starts when it ends") in log
    assert f"nested wait: plain is writing {shown(tree)}, which contains {shown(nested)}" in log


@pytest.mark.parametrize("first", ["plain", "alias", "nested"])
def test_run_refuses_every_other_name_for_a_busy_tree(mirrord, tmp_path, same_tree, first):
    tree, link, nested = same_tree
    spans = tmp_path / "spans"
    daemon = mirrord(general() + recording_task("plain", tree, spans, 300)
                     + recording_task("alias", link, spans, 300)
                     + recording_task("nested", nested, spans, 300)
                     + recording_task("beside", tmp_path / "tree2", spans, 0))
    assert daemon.cli("--run", first).returncode == 0
    for other in {"plain", "alias", "nested"} - {first}:
        refused = daemon.cli("--run", other)
        assert refused.returncode == 1
        assert f"{first} is running and writes" in refused.stderr
        written = {"plain": tree, "alias": link, "nested": nested}
        # Both directories are named.
        assert str(written[first]) in refused.stderr and str(written[other]) in refused.stderr
    # A directory whose name merely starts the same is another directory.
    assert daemon.cli("--run", "beside", "--wait").returncode == 0
    assert [name for name, task in daemon.status().items() if task["state"] == "running"] == [
        first]


def test_a_run_keeps_the_tree_it_started_on_when_the_symlink_moves(mirrord, tmp_path, same_tree):
    tree, link, _nested = same_tree
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    spans = tmp_path / "spans"
    daemon = mirrord(general() + recording_task("alias", link, spans, 300)
                     + recording_task("plain", tree, spans, 0)
                     + recording_task("other", elsewhere, spans, 0))
    assert daemon.cli("--run", "alias").returncode == 0
    wait_for(lambda: spans.exists(), what="alias to start")
    link.unlink()
    link.symlink_to(elsewhere)  # re-pointed while alias syncs into the old target
    refused = daemon.cli("--run", "plain")
    assert refused.returncode == 1 and "alias is running and writes the same localdir" in \
        refused.stderr and str(os.path.realpath(tree)) in refused.stderr
    # What the link points at now is not what the run holds.
    assert daemon.cli("--run", "other", "--wait").returncode == 0
    assert daemon.cli("--cancel", "alias").returncode == 0
    daemon.wait_result("alias")
    assert daemon.cli("--run", "plain", "--wait").returncode == 0
