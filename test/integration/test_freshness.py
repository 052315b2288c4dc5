# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 12 with a real mirrord and a real rsync daemon: checkfile, trace files, interval
schedules across a restart, randomdelay, hooks, and iotimeout against an upstream that stalls
after the handshake and one that stalls in the middle of a large file."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mirror.interval import spread_offset
from mirror.values import local_host_name
from test.integration.conftest import general, saved_task_state, start_rsync_daemon

HOUR = 3600
YEARLY = "0 0 1 1 *"


@dataclass
class Upstream:
    port: int
    tree: Path

    @property
    def host(self) -> str:
        return f"rsync://127.0.0.1:{self.port}/up/"


@pytest.fixture
def upstream(tmp_path) -> Iterator[Upstream]:
    """An rsync daemon of this test's own, serving a tree the test may change."""
    base = tmp_path / "upstream"
    tree = base / "tree"
    (tree / "debian" / "project" / "trace").mkdir(parents=True)
    (tree / "debian" / "pool").mkdir()
    (tree / "debian" / "pool" / "a.deb").write_bytes(os.urandom(8192))
    (tree / "debian" / "dists").mkdir()
    (tree / "debian" / "dists" / "Release").write_text("Suite: stable\n")
    master = tree / "debian" / "project" / "trace" / "master"
    master.write_text("Wed Dec  2 08:00:00 UTC 2026\nArchive serial: 2026120201\n")
    process, port = start_rsync_daemon(base, {"up": tree})
    yield Upstream(port, tree)
    process.terminate()
    process.wait(10)


def rsync_task(name: str, upstream: Upstream, *lines: str) -> str:
    return "\n".join([f"[{name}]", f"upstream[] = {upstream.host}", "rsyncdir = debian/",
                      f"localdir = @DIR@/mirror/{name}", *lines]) + "\n"


def age_last_end(directory: Path, name: str, seconds: float) -> None:
    """Make the state say *name*'s last run ended *seconds* ago (the daemon is stopped)."""
    path = directory / "state.json"
    document = json.loads(path.read_text())
    document["tasks"][name]["last_end"] = time.time() - seconds
    path.write_text(json.dumps(document))


def run_due_again(daemon, name: str, after: str) -> dict:
    """Restart *daemon* with *name*'s last end 7 hours back, so that its 6-hour interval has
    passed, and wait for the run that starts at once."""
    daemon.stop()
    age_last_end(daemon.directory, name, 7 * HOUR)
    daemon.start()
    return daemon.wait_result(name, after=after)


def restart(daemon):
    daemon.stop()
    return daemon.start()


# --- checkfile, and interval across a restart ----------------------------------------


def test_checkfile_skips_an_unchanged_upstream_and_syncs_a_changed_or_missing_one(
        mirrord, upstream):
    daemon = mirrord(general() + rsync_task(
        "debian", upstream, "interval = 6h", "checkfile = project/trace/master"))
    first = daemon.wait_result("debian")  # due at once: no copy of a success yet, so a sync
    assert first["last_result"] == "success", daemon.log()
    localdir = daemon.directory / "mirror" / "debian"
    assert (localdir / "pool" / "a.deb").exists()
    saved = daemon.directory / "checkfiles" / "debian.saved"
    assert saved.read_bytes() == (upstream.tree / "debian/project/trace/master").read_bytes()
    assert first["next_run_ts"] == pytest.approx(first["last_end_ts"] + 6 * HOUR, abs=1)

    # Across a restart the next run still counts from the recorded end.
    daemon = restart(daemon)
    assert daemon.status()["debian"]["next_run_ts"] == pytest.approx(
        first["last_end_ts"] + 6 * HOUR, abs=1)

    # Unchanged upstream: the run ends "unchanged", and counts as fresh.
    (localdir / "pool" / "a.deb").unlink()  # a sync would bring it back; a skip does not
    second = run_due_again(daemon, "debian", first["last_end"])
    assert second["last_result"] == "unchanged", daemon.log()
    assert second["last_success_ts"] == pytest.approx(second["last_end_ts"], abs=1)
    assert second["jobs_status"] == "success" and "Up to date" in second["message"]
    assert not (localdir / "pool" / "a.deb").exists()
    log = next((daemon.directory / "logs").glob("debian.log.*")).read_text()
    assert "checkfile unchanged since the last successful sync" in log

    # Changed upstream: the full sync runs, and the new copy is kept.
    master = upstream.tree / "debian/project/trace/master"
    master.write_text("Thu Dec  3 08:00:00 UTC 2026\nArchive serial: 2026120301\n")
    third = run_due_again(daemon, "debian", second["last_end"])
    assert third["last_result"] == "success"
    assert (localdir / "pool" / "a.deb").exists()
    assert saved.read_bytes() == master.read_bytes()

    # Missing upstream: not a skip; the full sync runs, and the log says why.
    master.unlink()
    (localdir / "pool" / "a.deb").unlink()
    fourth = run_due_again(daemon, "debian", third["last_end"])
    assert fourth["last_result"] == "success"
    assert (localdir / "pool" / "a.deb").exists()
    log = next((daemon.directory / "logs").glob("debian.log.*")).read_text()
    assert "checkfile not fetched (rsync exit 23): the full sync runs" in log


# --- trace files ----------------------------------------------------------------------


def test_the_trace_file_is_written_and_survives_the_next_syncs_stage_two(mirrord, upstream):
    daemon = mirrord(general(tracehost="mirror.test", maintainer="Admins <a@example.org>")
                     + rsync_task("debian", upstream, f"time = {YEARLY}", "trace = 1",
                                  "twostage = 1", "firststage = pool", "timeout = 10m"))
    assert daemon.cli("--run", "debian", "--wait").returncode == 0, daemon.log()
    traces = daemon.directory / "mirror" / "debian" / "project" / "trace"
    lines = (traces / "mirror.test").read_text().splitlines()
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert lines[0].endswith("UTC " + time.strftime("%Y", time.gmtime()))
    assert fields["Archive serial"] == "2026120201"
    assert fields["Running on host"] == local_host_name()  # its own name, not the file's
    assert fields["Maintainer"] == "Admins <a@example.org>"
    assert fields["Upstream-mirror"] == "127.0.0.1"
    assert fields["Creator"].startswith("mirrord ")
    assert int(fields["Total bytes received in rsync"]) > 8192
    for key in ("Date", "Date-Started", "Total time spent in stage1 rsync",
                "Total time spent in stage2 rsync", "Total time spent in rsync"):
        assert key in fields
    assert (traces / "_traces").read_text().splitlines() == ["master", "mirror.test"]
    first = (traces / "mirror.test").read_text()
    (traces / "stale.example.net").write_text("a trace the upstream no longer has\n")
    time.sleep(1.1)
    assert daemon.cli("--run", "debian", "--wait").returncode == 0, daemon.log()
    # Stage 2 (--delete-after, --verbose) deleted what the upstream lacks, but not the trace
    # files; then the trace became the new run's.
    log = next((daemon.directory / "logs").glob("debian.log.*")).read_text()
    assert "--delete-after" in log and "deleting project/trace/stale.example.net" in log
    assert "deleting project/trace/mirror.test" not in log
    assert "deleting project/trace/_traces" not in log
    assert (traces / "mirror.test").read_text() != first
    assert (traces / "_traces").read_text().splitlines() == ["master", "mirror.test"]


# --- randomdelay ----------------------------------------------------------------------


def test_randomdelay_offsets_are_stable_and_within_range(mirrord, upstream):
    tasks = "".join(rsync_task(f"t{number}", upstream, f"time = {YEARLY}")
                    for number in range(5))
    daemon = mirrord(general(randomdelay="1h") + tasks)
    before = {name: task["next_run_ts"] for name, task in daemon.status().items()}
    slot = min(before.values()) - min(spread_offset(name, HOUR) for name in before)
    assert {name: due - slot for name, due in before.items()} == {
        name: spread_offset(name, HOUR) for name in before}
    assert all(0 <= due - slot < HOUR for due in before.values())
    daemon = restart(daemon)
    assert {name: task["next_run_ts"] for name, task in daemon.status().items()} == before


# --- hooks ----------------------------------------------------------------------------


HOOK = """#!/bin/sh
env | grep '^MIRROR_' | sort > "$1.$MIRROR_HOOK"
echo "hook $MIRROR_HOOK ran"
exit "${2:-0}"
"""


def hook_script(tmp_path: Path) -> Path:
    path = tmp_path / "hook.sh"
    path.write_text(HOOK)
    path.chmod(0o755)
    return path


def dumped(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_hooks_get_the_runs_environment_and_a_failing_success_hook_fails_the_run(
        mirrord, upstream, tmp_path):
    hook, dump = hook_script(tmp_path), tmp_path / "dump"
    daemon = mirrord(general() + rsync_task(
        "debian", upstream, f"time = {YEARLY}", f"exec_before = {hook} {dump}",
        f"exec_on_success = {hook} {dump} 4", f"exec_on_failure = {hook} {dump}"))
    result = daemon.cli("--run", "debian", "--wait")
    assert result.returncode != 0
    task = daemon.status()["debian"]
    assert task["last_result"] == "failed" and task["exit_code"] == 4
    before = dumped(Path(f"{dump}.exec_before"))
    success = dumped(Path(f"{dump}.exec_on_success"))
    log = next((daemon.directory / "logs").glob("debian.log.*"))
    assert before["MIRROR_NAME"] == "debian" and before["MIRROR_RESULT"] == ""
    assert before["MIRROR_LOCALDIR"] == str(daemon.directory / "mirror" / "debian")
    assert before["MIRROR_UPSTREAM"] == upstream.host
    assert before["MIRROR_LOGFILE"] == str(log)
    assert (success["MIRROR_RESULT"], success["MIRROR_EXIT_CODE"]) == ("success", "0")
    assert not Path(f"{dump}.exec_on_failure").exists()  # a failed success hook is the end
    text = log.read_text()
    assert "hook exec_before ran" in text and "hook exec_on_success ran" in text


def test_a_before_hook_vetoes_and_a_failure_hook_hears_of_the_failure(
        mirrord, upstream, tmp_path):
    hook, dump = hook_script(tmp_path), tmp_path / "dump"
    daemon = mirrord(general() + rsync_task(
        "vetoed", upstream, f"time = {YEARLY}", f"exec_before = {hook} {dump}.v 1",
        f"exec_on_success = {hook} {dump}.v")
        + rsync_task("broken", upstream, f"time = {YEARLY}", "args = --no-such-option",
                     f"exec_on_failure = {hook} {dump}.b"))
    daemon.cli("--run", "vetoed", "--wait")
    task = daemon.status()["vetoed"]
    assert task["last_result"] == "vetoed" and task["consecutive_failures"] == 0
    assert not (daemon.directory / "mirror" / "vetoed" / "pool").exists()
    assert not Path(f"{dump}.v.exec_on_success").exists()
    daemon.cli("--run", "broken", "--wait")
    failure = dumped(Path(f"{dump}.b.exec_on_failure"))
    assert (failure["MIRROR_RESULT"], failure["MIRROR_EXIT_CODE"]) == ("failed", "1")
    task = daemon.status()["broken"]
    assert task["last_result"] == "failed" and task["exit_code"] == 1


# --- iotimeout ------------------------------------------------------------------------


class StallingServer:
    """A TCP server on 127.0.0.1. ``target`` None: it speaks rsync's greeting, accepts any
    module, then says nothing more. Else it forwards to *target* and stops passing the
    upstream's bytes on after *limit* of them, keeping the connection open."""

    def __init__(self, target: int | None = None, limit: int = 0) -> None:
        self.target, self.limit = target, limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._serve, daemon=True)]
        self.threads[0].start()

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            self.held.append(client)
            self._start(self._handle, client)

    def _handle(self, client: socket.socket) -> None:
        if self.target is None:
            client.sendall(b"@RSYNCD: 31.0\n")
            received = b""
            while received.count(b"\n") < 2:  # its greeting, then the module's name
                chunk = client.recv(4096)
                if not chunk:
                    return
                received += chunk
            client.sendall(b"@RSYNCD: OK\n")
            return  # and then silence, with the connection open
        server = socket.create_connection(("127.0.0.1", self.target))
        self.held.append(server)
        self._start(self._pipe, client, server, None)
        self._pipe(server, client, self.limit)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        passed = 0
        while True:
            try:
                chunk = source.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            if limit is not None and passed + len(chunk) > limit:
                return  # the stall: nothing more goes through, nothing is closed
            passed += len(chunk)
            try:
                sink.sendall(chunk)
            except OSError:
                return

    def close(self) -> None:
        """Close everything, and end every thread: a thread left blocked in accept() would
        hold a descriptor number of this process (the kernel reserves it before waiting)."""
        for sock in (self.listener, *self.held):
            with contextlib.suppress(OSError):  # wakes a thread blocked on it; close does not
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def large_upstream(upstream) -> Upstream:
    (upstream.tree / "debian" / "pool" / "large.bin").write_bytes(os.urandom(16 * 1024 * 1024))
    return upstream


@pytest.mark.parametrize("where", ["after the handshake", "in the middle of a large file"])
def test_iotimeout_ends_a_stalled_transfer_well_before_the_timeout(
        mirrord, large_upstream, where):
    server = (StallingServer() if where == "after the handshake"
              else StallingServer(large_upstream.port, limit=2 * 1024 * 1024))
    try:
        stalled = Upstream(server.port, large_upstream.tree)
        daemon = mirrord(general() + rsync_task(
            "debian", stalled, f"time = {YEARLY}",
            # rsync's own --timeout is on: its keep-alives must not count as progress
            "args = --recursive --times --bwlimit=4m --timeout=60",
            "iotimeout = 3s", "timeout = 10m"))
        began = time.monotonic()
        daemon.ask({"command": "run", "name": "debian"})
        task = daemon.wait_result("debian", timeout=30)
        took = time.monotonic() - began
        assert task["last_result"] == "stalled", daemon.log()
        assert 3 <= took < 15
        assert "Stalled" in task["message"]
        log = next((daemon.directory / "logs").glob("debian.log.*")).read_text()
        assert "no data moved for" in log and "iotimeout 3 s" in log
        saved = saved_task_state(daemon.directory, "debian",
                                 lambda entry: entry.get("last_end") is not None)
        assert saved["consecutive_failures"] == 1
    finally:
        server.close()
