# SPDX-License-Identifier: GPL-3.0-or-later
"""The built-in plugins import their heavy libraries only when they use them.

prometheus_client (with http.server, urllib.request, ssl and hashlib) and smtplib with ssl
are several megabytes of a daemon's resident memory (bench/daemon's RSS rows). An idle
daemon with the default plugins must not hold them: the first /metrics request imports
prometheus_client, the first mail smtplib. Each check runs in a fresh interpreter, since
the test process itself has long imported everything.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

# Loaded by no built-in plugin until it is used. Discovery reads entry_points.txt itself
# (mirror.entrypoints): importlib.metadata and what it imports (email.message, csv) stay out.
HEAVY = ("prometheus_client", "mirror.plugins.slatefish.metrics", "smtplib", "ssl", "_ssl",
         "hashlib", "_hashlib", "email.generator", "html", "difflib", "http.server",
         "urllib.request", "importlib.metadata", "email.message", "csv")

# Loads every built-in plugin through PluginHost as the daemon does (default settings, the
# status page on a free port), lets them idle, then uses the status page and the mailer.
SCRIPT = textwrap.dedent("""
    import json, socket, sys, time
    from concurrent.futures import Future
    from datetime import timezone

    from mirror.pluginhost import PluginHost
    from mirror.pluginsettings import PluginSection, discover
    from mirror.policy import Conditions
    from mirror.views import Snapshot
    from mirror.task import GeneralSettings

    HEAVY = json.loads(sys.argv[1])
    STATE = sys.argv[2]

    class Side:
        def snapshot(self):
            return Snapshot(taken=time.time(), zone=timezone.utc, tasks=(), queue=(),
                            logdir=STATE, emails=())

        def plugin_request(self, message):
            return {"ok": True}

        def add_system_entry(self, name, schedule, priority):
            pass

        def record_size(self, name, size):
            pass

    def loop(function):
        future = Future()
        future.set_result(function(Side()))
        return future

    class Probe:
        def conditions(self, general, running):
            return Conditions(load=0.5, http_connections=0)

    def loaded():
        return sorted(name for name in HEAVY if name in sys.modules)

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    builtin = [entry for entry in discover() if entry.value.startswith("mirror.plugins.")]
    sections = {"slatefish": PluginSection("slatefish", 1, {"listen": f"127.0.0.1:{port}"})}
    host = PluginHost(loop, Probe(), STATE + '/state.json', GeneralSettings)
    host.load(sections, builtin)
    report = {"enabled": sorted(host.plugins), "idle": loaded()}

    def get(path):  # raw bytes: urllib would import ssl and hashlib itself
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(f"GET {path} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n".encode())
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        head, _, body = answer.decode().partition("\\r\\n\\r\\n")
        return int(head.split()[1]), body

    report["page"] = get("/")[0]
    report["after_page"] = loaded()
    status, text = get("/metrics")
    report["metrics"] = [status, "mirror_queue_entries" in text]
    report["after_metrics"] = loaded()

    notifier = host.plugins["Notifier"]
    with socket.socket() as closed:  # a port nobody listens on: the mail fails, as logged
        closed.bind(("127.0.0.1", 0))
        notifier.settings = dict(notifier.settings, port=closed.getsockname()[1], timeout=5)
    from mirror.plugins import mailtext
    mail = mailtext.message("subject", "text\\n", "mirror@example.org", ("root@example.org",))
    report["sent"] = notifier.send(mail, "mirror@example.org", ("root@example.org",), "a test mail")
    report["after_mail"] = loaded()
    host.stop(5, lambda seconds: time.sleep(min(seconds, 0.05)))
    print(json.dumps(report))
""")


def run_fresh(tmp_path: Path) -> dict[str, object]:
    """Run SCRIPT in a new interpreter; its JSON report."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(HEAVY), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=environment)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_idle_default_plugins_hold_no_heavy_module_until_used(tmp_path):
    report = run_fresh(tmp_path)
    assert report["enabled"] == ["Notifier", "Size", "SlateFish", "SystemTask", "TaskStatus"]
    assert report["idle"] == []
    # The page needs neither prometheus_client nor the mail code.
    assert report["page"] == 200
    assert report["after_page"] == ["html"]
    # /metrics imports prometheus_client (and what it imports) and answers as before.
    assert report["metrics"] == [200, True]
    assert {"prometheus_client", "mirror.plugins.slatefish.metrics"} <= set(
        report["after_metrics"])
    assert "smtplib" not in report["after_metrics"]
    # The first mail imports smtplib; nobody listens, so it is logged as not sent.
    assert report["sent"] is False
    assert "smtplib" in report["after_mail"]


def test_plugin_modules_and_settings_import_light():
    # What `mirrord --check` and the config loader import: the plugins' modules, to read
    # their SETTINGS, and the settings code. Discovery (importlib.metadata) is not run here.
    code = ("import json, sys\n"
            "import mirror.config, mirror.pluginhost\n"
            "from mirror.plugins import notifier, size, systemtask, taskstatus, mailtext\n"
            "from mirror.plugins import slatefish\n"
            "from mirror.plugins.slatefish import app\n"
            f"heavy = {list(HEAVY)!r} + ['importlib.metadata']\n"
            "print(json.dumps(sorted(name for name in heavy if name in sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    # config.py imports difflib itself (for mirror.ini's unknown keys); all else is lazy.
    assert set(json.loads(done.stdout)) <= {"difflib"}


def test_discovery_reads_entry_points_without_importlib_metadata():
    # What the daemon runs first (lifecycle.preload_plugins): discover, then import the
    # plugins' modules. importlib.metadata would import email (1.2 MB in all) for this.
    code = textwrap.dedent("""
        import json, sys
        from mirror.pluginsettings import discover
        METADATA = ("importlib.metadata", "email", "csv", "configparser")
        entries = discover()
        report = {"names": [entry.name for entry in entries],
                  "discovered": sorted(name for name in METADATA if name in sys.modules)}
        classes = [entry.load() for entry in entries]
        report["loaded"] = sorted(name for name in METADATA[:1] if name in sys.modules)
        print(json.dumps(report))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {"Notifier", "Size", "SlateFish", "SystemTask", "TaskStatus"} <= set(report["names"])
    assert report["discovered"] == []
    assert report["loaded"] == []


def test_the_daemon_and_the_config_load_without_the_mail_modules():
    """Trace files format their dates with email.utils, and only when one is written."""
    code = ("import sys, mirror.config, mirror.daemon, mirror.tracefile\n"
            "print(sorted(name for name in sys.modules if name.startswith('email')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
