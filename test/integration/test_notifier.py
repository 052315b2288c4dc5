# SPDX-License-Identifier: GPL-3.0-or-later
"""Notifier against a real SMTP server (aiosmtpd), a real mirrord and a real rsync daemon."""
from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from mirror.plugins import mailtext
from mirror.plugins.notifier import Notifier
from test.integration.conftest import Mirrord, free_port, general, wait_for

TASK = "web"
ADMIN = "admin@example.org"
HOSTNAME = socket.gethostname()


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        return self.message.get_content().replace("\r\n", "\n")  # as sent over SMTP


class Inbox:
    """An aiosmtpd handler that keeps every mail it is given."""

    def __init__(self) -> None:
        self.port = 0
        self._mails: list[Mail] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls it so
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self._lock:
            self._mails.append(Mail(envelope.mail_from, tuple(envelope.rcpt_tos), message))
        return "250 OK"

    @property
    def mails(self) -> list[Mail]:
        with self._lock:
            return list(self._mails)

    def wait(self, count: int) -> list[Mail]:
        return wait_for(lambda: len(self.mails) >= count and self.mails, timeout=20,
                        what=f"{count} mails")


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    handler = Inbox()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture
def source(rsync_daemon) -> Iterator[Path]:
    """Where the task syncs from, inside the rsync module; missing at first (rsync: exit 23)."""
    path = rsync_daemon.tree / f"notifier-{uuid.uuid4().hex}"
    yield path
    shutil.rmtree(path, ignore_errors=True)  # the module is shared with other tests


def provide(source: Path, files: int) -> None:
    """Make *source* appear at once, holding *files* files, so no sync sees it half made."""
    staging = source.parent.parent / f"staging-{source.name}"
    staging.mkdir()
    for number in range(files):
        (staging / f"file-{number:03d}.txt").write_text(f"{number}\n")
    os.rename(staging, source)


def config(rsync_daemon, source: Path, **extra: str) -> str:
    lines = {"upstream[]": rsync_daemon.url(), "rsyncdir": source.name,
             "localdir": "@DIR@/mirror", "time": "0 0 1 1 *", **extra}
    return (general(emails=ADMIN) + f"[{TASK}]\n"
            + "".join(f"{key} = {value}\n" for key, value in lines.items()))


def plugins(port: int, *extra: str) -> str:
    return ("[slatefish]\nenabled = 0\n"
            f"[notifier]\nhost = 127.0.0.1\nport = {port}\n" + "".join(extra))


def run(daemon: Mirrord) -> dict:
    return daemon.ask({"command": "run", "name": TASK, "wait": True}, timeout=30)


def field(mail: Mail, label: str) -> str:
    match = re.search(rf"^{label}: +(.*)$", mail.text, re.MULTILINE)
    assert match, f"no {label} in {mail.text}"
    return match.group(1)


def tail_section(mail: Mail) -> list[str]:
    _, _, tail = mail.text.partition("lines of the log:\n\n")
    assert tail, mail.text
    return tail.splitlines()


def test_one_mail_when_a_task_starts_failing_and_one_when_it_recovers(
        mirrord, rsync_daemon, source, inbox):
    daemon = mirrord(config(rsync_daemon, source, autoretry="1s"), plugins=plugins(inbox.port))
    reply = run(daemon)
    assert (reply["result"], reply["exit_code"]) == ("failed", 23)
    # autoretry reruns it every second; every retry fails too.
    wait_for(lambda: daemon.status()[TASK]["consecutive_failures"] >= 3, timeout=20,
             what="two failed retries")

    failure = inbox.wait(1)[0]
    assert failure.recipients == (ADMIN,) and failure.message["To"] == ADMIN
    assert failure.sender == failure.message["From"] == f"mirror@{socket.getfqdn()}"
    assert failure.subject == f"[mirror {HOSTNAME}] {TASK} failed (exit 23)"
    assert field(failure, "Task") == TASK
    assert field(failure, "Result") == "failed: Partial transfer due to error"
    assert field(failure, "Exit code") == "23"
    assert field(failure, "Upstream") == rsync_daemon.url()
    log_path = Path(field(failure, "Log"))
    assert log_path.parent == daemon.directory / "logs"
    # Later runs append to the same (daily) log; the mail ends with the first run's end.
    first_run = log_path.read_text().splitlines()
    first_run = first_run[:next(index for index, line in enumerate(first_run)
                                if f" end {TASK} stage 1/1: exit 23 after" in line) + 1]
    assert tail_section(failure) == first_run
    assert any("No such file or directory" in line for line in tail_section(failure))

    provide(source, files=80)  # the next retry succeeds
    # Events reach the plugin in order, so once the recovery mail is here, every failed
    # retry before it has been handled: any mail about them would have come first.
    mails = inbox.wait(2)
    assert [mail.subject for mail in mails] == [
        f"[mirror {HOSTNAME}] {TASK} failed (exit 23)", f"[mirror {HOSTNAME}] {TASK} recovered"]
    recovery = mails[1]
    assert recovery.recipients == (ADMIN,)
    assert re.search(r"synced successfully again, after \d+ failed runs", recovery.text)
    assert field(recovery, "Result") == "success: Success"
    assert field(recovery, "Exit code") == "0"
    log_lines = Path(field(recovery, "Log")).read_text().splitlines()
    assert len(log_lines) > 80  # rsync -v lists every file
    assert tail_section(recovery) == log_lines[-50:]
    assert "file-079.txt" in recovery.text and "file-000.txt" not in recovery.text

    assert run(daemon)["result"] == "success"  # still fine: no mail
    shutil.rmtree(source)
    assert run(daemon)["result"] == "failed"  # a new streak: a new failure mail
    mails = inbox.wait(3)
    assert [mail.subject for mail in mails] == [
        f"[mirror {HOSTNAME}] {TASK} failed (exit 23)", f"[mirror {HOSTNAME}] {TASK} recovered",
        f"[mirror {HOSTNAME}] {TASK} failed (exit 23)"]
    wait_for(lambda: daemon.status()[TASK]["consecutive_failures"] >= 2, timeout=20,
             what="a failed retry")
    # Stopping delivers every queued event to the plugin first (the run it interrupts
    # ends killed, which mails nobody).
    assert daemon.stop() == 0
    assert len(inbox.mails) == 3
    assert "Notifier failed" not in daemon.log() and "Traceback" not in daemon.log()


def test_an_unreachable_server_is_logged_and_syncing_goes_on(mirrord, rsync_daemon, source):
    closed = free_port()
    daemon = mirrord(config(rsync_daemon, source), plugins=plugins(closed))
    assert run(daemon)["result"] == "failed"
    wait_for(lambda: f"{TASK}: the failure mail was not sent through 127.0.0.1:{closed}: "
             in daemon.log(), what="the failed delivery in the log")
    provide(source, files=3)
    assert run(daemon)["result"] == "success"
    assert (daemon.directory / "mirror" / "file-002.txt").read_text() == "2\n"
    wait_for(lambda: f"{TASK}: the recovery mail was not sent through 127.0.0.1:{closed}: "
             in daemon.log(), what="the second failed delivery in the log")
    assert "Connection refused" in daemon.log()
    assert daemon.process.poll() is None and daemon.status()[TASK]["last_result"] == "success"


def test_no_recipients_is_logged_once_per_transition(mirrord, rsync_daemon, source, inbox):
    daemon = mirrord(config(rsync_daemon, source).replace(f"emails = {ADMIN}\n", ""),
                     plugins=plugins(inbox.port))
    assert run(daemon)["result"] == "failed"
    assert run(daemon)["result"] == "failed"
    provide(source, files=1)
    assert run(daemon)["result"] == "success"
    wait_for(lambda: "recovery mail sent" in daemon.log(), what="the recovery notice")
    assert daemon.stop() == 0
    notices = re.findall(r"no (\w+) mail sent: \[general\] emails is empty", daemon.log())
    assert notices == ["failure", "recovery"] and inbox.mails == []


def test_check_reports_settings_that_conflict_at_the_sections_line(tmp_path, rsync_daemon,
                                                                    source):
    daemon = Mirrord(tmp_path, config(rsync_daemon, source).replace("@DIR@", str(tmp_path)))
    (tmp_path / "plugin.ini").write_text(plugins(25, "starttls = yes\nssl = yes\nuser = me\n"))
    result = daemon.cli("--check")
    assert result.returncode == 1
    assert re.search(r"plugin\.ini:3: \[notifier\] starttls and ssl are both on; choose one",
                     result.stdout), result.stdout
    assert re.search(r"plugin\.ini:3: \[notifier\] user and password_file go together",
                     result.stdout), result.stdout


def test_check_reports_a_bad_setting_with_file_and_line(tmp_path, rsync_daemon, source):
    daemon = Mirrord(tmp_path, config(rsync_daemon, source).replace("@DIR@", str(tmp_path)))
    (tmp_path / "plugin.ini").write_text(plugins(25).replace("port = 25", "port = abc"))
    result = daemon.cli("--check")
    assert result.returncode != 0
    assert re.search(r"plugin\.ini:5: \[notifier\] port: 'abc' is not a TCP port",
                     result.stdout + result.stderr), result.stdout + result.stderr


def test_login_reads_the_password_file_at_each_mail(tmp_path, caplog):
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        secret = tmp_path / "password"
        notifier = Notifier("Notifier")
        notifier.settings = {**{setting.key: setting.default for setting in Notifier.SETTINGS},
                             "host": "127.0.0.1", "port": port, "user": "mirror",
                             "password_file": str(secret)}
        mail = mailtext.message("test", "text\n", "mirror@example.org", (ADMIN,))

        def send() -> bool:
            return notifier.send(mail, "mirror@example.org", (ADMIN,), "web: the test mail")

        secret.write_text("s3cret\n")
        assert send() and logins[0] == (b"mirror", b"s3cret") and len(inbox.mails) == 1
        secret.write_text("changed\n")
        assert not send() and logins[-1] == (b"mirror", b"changed")
        assert "web: the test mail was not sent through 127.0.0.1:" in caplog.text
        assert "Authentication credentials invalid" in caplog.text
        secret.unlink()
        assert not send()
        assert f"web: the test mail was not sent: cannot read password_file {secret}" \
            in caplog.text
        assert len(inbox.mails) == 1
    finally:
        controller.stop()
