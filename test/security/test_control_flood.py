# SPDX-License-Identifier: GPL-3.0-or-later
"""The control socket under attack, against real daemons: requests of the wrong shape, clients
that ask for large replies and never read them, and a flood of idle connections while syncs
are due.

What the daemon promises (docs/daemon.md, "Control"): a clear error for every malformed
request and no traceback; replies held for slow readers bounded by the output budget and
dropped after the write timeout; and, whatever a flood does, the syncs and the state file keep
their descriptors. A legitimate client that arrives while a flood fills every connection slot
is turned away at once with "mirrord is busy"; that is accepted: it never hangs, and the
syncs never suffer.
"""
from __future__ import annotations

import json
import re
import resource
import selectors
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from mirror.control import MAX_CONNECTIONS, OUTPUT_BUDGET, REQUEST_TIMEOUT, WRITE_TIMEOUT
from mirror.fdlimits import DEFAULT_RESERVE
from test.integration.conftest import NO_WEB_PAGE, Mirrord, general, load_state, wait_for

YEARLY = "0 0 1 1 *"
PRLIMIT = shutil.which("prlimit")


def simple_task(name: str, script: str, schedule: str = YEARLY) -> str:
    return f"[{name}]\ntype = simple\ncommand = sh\nargs = -c '{script}'\ntime = {schedule}\n"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def raw_exchange(path: Path, line: bytes) -> tuple[bytes, bool]:
    """Send *line*, read until the daemon closes; return what came back and whether it
    closed within 5 s."""
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(str(path))
        client.sendall(line)
        received = b""
        try:
            while chunk := client.recv(65536):
                received += chunk
        except socket.timeout:
            return received, False
        return received, True


# --- (a) requests of the wrong shape ------------------------------------------------------

MALFORMED = [
    (b'{"command": "run", "name": ["tick"]}\n', '"name" must be a string'),
    (b'{"command": "run", "name": null}\n', '"name" must be a string'),
    (b'{"command": "cancel", "name": {"a": 1}}\n', '"name" must be a string'),
    (b'{"command": "run", "name": "tick", "wait": "yes"}\n', '"wait" must be true or false'),
    (b'{"command": "run", "name": "tick", "wait": null}\n', '"wait" must be true or false'),
    (b'{"command": "cancel", "name": "tick", "wait": true}\n',
     'unknown field "wait" in a cancel request; allowed fields: command, name'),
    (b'{"command": "status", "tasks": ["tick"]}\n',
     'unknown field "tasks" in a status request; allowed fields: command'),
    (b'{"command": 7}\n', '"command" must be a string, one of: queue, status, run, cancel'),
    (b'{"command": ["run"], "name": "tick"}\n', '"command" must be a string'),
    (b'{"command": "queue", "command": {"x": 1}}\n', '"command" must be a string'),
    (b'{"name": "tick"}\n', 'the request has no "command"'),
    (b'{"command": "run"}\n', 'run needs "name"'),
    (b'{"command": "explode"}\n', "unknown command 'explode'"),
    (b"[]\n", "must be a JSON object"),
    (b"null\n", "must be a JSON object"),
    (b"not json\n", "not a JSON object on one line"),
]


def test_requests_of_the_wrong_shape_get_clear_errors_and_no_traceback(mirrord):
    daemon = mirrord(general() + simple_task("tick", "exit 0"))
    for line, fragment in MALFORMED:
        received, closed = raw_exchange(daemon.socket, line)
        assert closed, line
        reply = json.loads(received)
        assert reply["ok"] is False and fragment in reply["error"], (line, reply)
    # Nothing was started by a "run" of the wrong shape, and the daemon is fine.
    assert daemon.status()["tick"]["last_result"] is None
    assert daemon.cli("--run", "tick", "--wait").returncode == 0
    log = daemon.log()
    assert "Traceback" not in log and "control request" not in log
    assert "unhashable" not in log


# --- (b) clients that never read their replies ------------------------------------------------

@pytest.mark.slow
def test_clients_that_never_read_hold_bounded_memory_until_the_write_timeout(mirrord):
    """300 clients ask for a 470 KB status and never read: before the limits this held every
    reply (+106 MB of RSS, for ever); now at most MAX_CONNECTIONS are served, replies held
    for them stay within OUTPUT_BUDGET, and all are dropped after WRITE_TIMEOUT."""
    tasks = "".join(simple_task(f"task{index:04d}", "exit 0") for index in range(1500))
    daemon = mirrord(general() + tasks)
    reply_size = len(json.dumps(daemon.status()))
    assert reply_size > 400_000  # more than the kernel's socket buffer takes at once
    time.sleep(0.5)
    rss_before, fds_before = rss_kib(daemon.pid), open_fds(daemon.pid)
    clients = []
    began = time.monotonic()
    for _ in range(300):
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(daemon.socket))  # blocking: waits for room in the daemon's queue
        client.settimeout(5)
        client.sendall(b'{"command": "status"}\n')
        clients.append(client)
    sent_at = time.monotonic()
    peak_rss, peak_fds = 0, 0
    while time.monotonic() < sent_at + 4:
        peak_rss = max(peak_rss, rss_kib(daemon.pid))
        peak_fds = max(peak_fds, open_fds(daemon.pid))
        time.sleep(0.1)
    grown_mib = (peak_rss - rss_before) / 1024
    print(f"reply {reply_size} bytes; RSS {rss_before} kB before, peak +{grown_mib:.1f} MiB "
          f"with 300 non-reading clients; daemon fds {fds_before} → peak {peak_fds}")
    assert grown_mib < OUTPUT_BUDGET / 2**20 + 24  # the budget and a status being encoded
    assert peak_fds <= fds_before + MAX_CONNECTIONS + 2  # and one being turned away
    # After the write timeout every connection is closed, without a complete reply.
    wait_for(lambda: open_fds(daemon.pid) <= fds_before, timeout=WRITE_TIMEOUT + 8,
             interval=0.2, what="the daemon to drop the non-reading clients")
    assert time.monotonic() - began >= WRITE_TIMEOUT - 0.5  # none dropped early
    busy = cut = 0
    for client in clients:
        received, closed = b"", False
        while True:
            try:
                chunk = client.recv(1 << 20)
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
        client.close()
        assert closed
        if received.endswith(b"\n"):
            assert "mirrord is busy" in json.loads(received)["error"]
            busy += 1
        else:
            cut += 1
    # Turned away at once when all slots were taken; served (and cut off) otherwise. More
    # than MAX_CONNECTIONS may be served in all when slots freed by the timeout are reused.
    assert busy > 0 and cut > 0 and busy + cut == 300
    assert daemon.ask({"command": "queue"})["ok"] is True
    assert "Traceback" not in daemon.log()


# --- (c) a flood of idle connections while syncs are due ------------------------------------

class LimitedMirrord(Mirrord):
    """A mirrord whose RLIMIT_NOFILE is set, soft and hard, by prlimit (so the daemon cannot
    raise it)."""

    def __init__(self, directory: Path, config: str, nofile: int) -> None:
        super().__init__(directory, config)
        self.nofile = nofile

    def argv(self, *extra: str) -> list[str]:
        command = super().argv(*extra)
        if "-D" in extra:  # the daemon itself, not its clients
            return [PRLIMIT, f"--nofile={self.nofile}:{self.nofile}", "--", *command]
        return command


class Flood(threading.Thread):
    """Keeps *size* connections open to *path*, never sending nor reading a byte; a
    connection the daemon closes is replaced by a new one (at most *per_round* every
    *pause* seconds, so the machine stays usable)."""

    def __init__(self, path: Path, size: int, per_round: int = 100, pause: float = 0.1):
        super().__init__(daemon=True)
        self.path, self.size, self.per_round, self.pause = str(path), size, per_round, pause
        self.stop = threading.Event()
        self.opened = self.closed_by_daemon = 0

    def run(self) -> None:
        watch = selectors.DefaultSelector()
        held: set[socket.socket] = set()
        try:
            while not self.stop.is_set():
                for _index in range(self.per_round if held else self.size):
                    if len(held) >= self.size:
                        break
                    client = socket.socket(socket.AF_UNIX)
                    client.setblocking(False)
                    try:
                        client.connect(self.path)
                    except BlockingIOError:  # the daemon's queue is full: next round
                        client.close()
                        break
                    held.add(client)
                    watch.register(client, selectors.EVENT_READ)
                    self.opened += 1
                # Closed by the daemon (a refusal, or the request timeout): replace it.
                for key, _mask in watch.select(self.pause):
                    watch.unregister(key.fileobj)
                    held.discard(key.fileobj)
                    key.fileobj.close()
                    self.closed_by_daemon += 1
        finally:
            for client in held:
                client.close()
            watch.close()


def refusal_reports(log: str) -> list[str]:
    return re.findall(r"control socket: turned away \d+ clients[^\n]*", log)


@pytest.mark.slow
def test_a_flood_of_idle_connections_never_takes_the_descriptors_of_syncs(tmp_path):
    """Two daemons, each flooded with 1,100 idle connections kept up across a minute
    boundary where ten syncs are due: one with the common limit of 1,024 descriptors (the
    cap of MAX_CONNECTIONS bites), one with only 160 (the reserve of DEFAULT_RESERVE bites
    before the cap). Every due run starts and is recorded in the state file; clients are
    answered or turned away at once."""
    if PRLIMIT is None:
        pytest.skip("prlimit (util-linux) is not installed")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * 1100 + 500
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"the hard limit on open files ({hard}) is below {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    ticking = "".join(simple_task(f"tick{index}", "echo tick", "* * * * *")
                      for index in range(10))
    daemons: dict[int, LimitedMirrord] = {}
    floods: list[Flood] = []
    try:
        try:
            for nofile in (1024, 160):
                directory = tmp_path / f"n{nofile}"
                directory.mkdir()
                (directory / "plugin.ini").write_text(NO_WEB_PAGE)
                daemon = LimitedMirrord(directory, general(str(directory)) + ticking, nofile)
                daemons[nofile] = daemon.start()
            baseline = {nofile: open_fds(daemon.pid) for nofile, daemon in daemons.items()}
            for daemon in daemons.values():
                floods.append(Flood(daemon.socket, 1100))
                floods[-1].start()
            wait_for(lambda: all(refusal_reports(daemon.log()) for daemon in daemons.values()),
                     timeout=15, what="the floods to fill both daemons")
            # The next minute boundary at least 3 s away: by then the floods are in full swing.
            established = time.time()
            boundary = (int(established + 3) // 60 + 1) * 60
            most_fds = dict.fromkeys(daemons, 0)
            answered = busy = 0
            while time.time() < boundary + 6:
                for nofile, daemon in daemons.items():
                    most_fds[nofile] = max(most_fds[nofile], open_fds(daemon.pid))
                for daemon in daemons.values():  # a real client, as an admin would type it
                    started = time.monotonic()
                    result = daemon.cli("--status", timeout=40)
                    elapsed = time.monotonic() - started
                    assert elapsed < 15, f"the client waited {elapsed:.1f} s"
                    if result.returncode == 0:
                        assert result.stdout.startswith("NAME")
                        answered += 1
                    else:
                        assert "mirrord is busy" in result.stderr, result.stderr
                        busy += 1
                time.sleep(1)
            for nofile, daemon in daemons.items():
                def all_ran(daemon: LimitedMirrord = daemon) -> bool:
                    try:
                        tasks = load_state(daemon.directory)
                    except (OSError, ValueError):
                        return False
                    return all((tasks.get(f"tick{index}") or {}).get("last_start", 0) >= boundary
                               and tasks[f"tick{index}"].get("result") == "success"
                               for index in range(10))
                wait_for(all_ran, timeout=20, interval=0.5,
                         what=f"the runs due at the boundary (nofile {nofile}) in the state file")
                logs = sorted((daemon.directory / "logs").glob("tick*.log.*"))
                assert len(logs) == 10 and all("tick" in path.read_text() for path in logs)
            for flood in floods:
                assert flood.opened >= 1100 and flood.closed_by_daemon >= 1000
        finally:
            for flood in floods:
                flood.stop.set()
            for flood in floods:
                flood.join(30)
        print(f"peak daemon descriptors {most_fds} (baselines {baseline}); status requests "
              f"during the floods: {answered} answered, {busy} turned away at once")
        # The cap held with 1,024 descriptors; the reserve held with 160.
        assert most_fds[1024] <= baseline[1024] + MAX_CONNECTIONS + 2
        assert most_fds[160] <= 160 - DEFAULT_RESERVE + 1
        for nofile, daemon in daemons.items():
            log = daemon.log()
            assert "Traceback" not in log
            assert "cannot prepare stage" not in log and "cannot write the state file" not in log
            assert "Too many open files" not in log
            # Refusals are logged with counts, at most once a minute.
            assert 1 <= len(refusal_reports(log)) <= 3, refusal_reports(log)
            # The flood over, its connections time out and the daemon serves everyone again.
            wait_for(lambda daemon=daemon: daemon.answers(), timeout=REQUEST_TIMEOUT + 10,
                     what=f"the daemon with nofile {nofile} to answer again")
            assert daemon.cli("--status").returncode == 0
    finally:
        for daemon in daemons.values():
            daemon.stop()
