# SPDX-License-Identifier: GPL-3.0-or-later
"""Notifier: mails [general] emails when a task starts failing and when it recovers.

One mail per transition, not one per failed retry: a failure mail when a run
fails, times out, ends unattended or is interrupted (the last two after a crash of
mirrord) after a success (or first ever run), a recovery mail when a run succeeds
after failures. Mails go out through SMTP on the plugin's own
thread; a server that cannot be reached is logged and delays only this plugin.
See docs/plugins.md.

smtplib and ssl are imported when the first mail is sent, not when the plugin
loads: together with hashlib (OpenSSL's libcrypto) they are about 5 MB of the
daemon's resident memory, and most daemons never mail.
"""
from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirror.i18n import _
from mirror.localzone import local_zone
from mirror.plugin import (
    UNANSWERED,
    PluginBase,
    RunFinishedEvent,
    Setting,
    parse_absolute_path,
    parse_bool,
    parse_duration,
    parse_emails,
)
from mirror.plugins import mailtext

if TYPE_CHECKING:
    import smtplib
    from email.message import EmailMessage

log = logging.getLogger(__name__)

SMTP_PORT = 25
SMTPS_PORT = 465
SUBMISSION_PORT = 587


def parse_host(text: str) -> str:
    """A host name or address, such as ``localhost`` or ``smtp.example.org``."""
    value = text.strip()
    if not value or any(char.isspace() for char in value):
        raise ValueError(_("'{text}' is not a host name (use e.g. localhost or smtp.example.org)")
                         .format(text=text))
    return value


def parse_port(text: str) -> int:
    """A TCP port, 1-65535."""
    value = text.strip()
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(_("'{text}' is not a TCP port (use a number 1-65535, e.g. 25, 465 "
                           "or 587)").format(text=text))
    return int(value)


def parse_user(text: str) -> str:
    """A non-empty login name."""
    if not text.strip():
        raise ValueError(_("the user name is empty (leave the key out to send without logging in)"))
    return text.strip()


def parse_address(text: str) -> str:
    """One e-mail address."""
    addresses = parse_emails(text)
    if len(addresses) != 1:
        raise ValueError(_("'{text}' is not one e-mail address (use e.g. mirror@example.org)")
                         .format(text=text))
    return addresses[0]


def parse_timeout(text: str) -> int:
    """A duration of at least one second: ``30``, ``30s``, ``2m``."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise ValueError(_("'{text}' is not a timeout (use a duration of at least 1 s, "
                           "e.g. 30, 30s or 2m)").format(text=text))
    return seconds


class Notifier(PluginBase):
    """Sends a failure mail and a recovery mail per failure streak of each task."""

    SETTINGS = (
        Setting("host", parse_host, "localhost", "the SMTP server"),
        Setting("port", parse_port, None, "its port; 25, or 465 with ssl, 587 with starttls"),
        Setting("starttls", parse_bool, False, "upgrade the connection with STARTTLS"),
        Setting("ssl", parse_bool, False, "connect with TLS from the start (SMTPS)"),
        Setting("user", parse_user, None, "log in as this user; needs password_file"),
        Setting("password_file", parse_absolute_path, None,
                "a file holding the password, read at each mail"),
        Setting("from", parse_address, None, "the sender; mirror@ this host's name"),
        Setting("timeout", parse_timeout, 30, "give up on the server after this long"),
    )

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._hostname: str | None = None
        self._fqdn: str | None = None

    @staticmethod
    def check_settings(values: dict[str, Any]) -> list[str]:
        """starttls with ssl, or user without password_file (or the reverse), are errors."""
        return conflicts(values)

    def enable(self) -> None:
        """Handle RunFinishedEvent."""
        self.host.register_event_handler("RunFinishedEvent", self.on_run_finished)

    @property
    def port(self) -> int:
        """The port setting, or the usual port of the chosen kind of connection."""
        if self.settings["port"] is not None:
            return int(self.settings["port"])
        if self.settings["ssl"]:
            return SMTPS_PORT
        return SUBMISSION_PORT if self.settings["starttls"] else SMTP_PORT

    def on_run_finished(self, event: RunFinishedEvent) -> None:
        """Mail about *event* if it starts or ends a failure streak (plugin thread)."""
        kind = mailtext.transition(event)
        if kind is None:
            return
        recipients = self.host.general.emails
        if not recipients:
            log.info("%s: no %s mail sent: [general] emails is empty", event.taskname, kind)
            return
        try:
            snapshot = self.host.snapshot()
            view, zone = snapshot.task(event.taskname), snapshot.zone
        except UNANSWERED:  # stopping: the mail goes out all the same, with less detail
            view, zone = None, local_zone()
        try:
            tail: list[str] | None = mailtext.log_excerpt(event)
            tail_problem = None
        except OSError as problem:
            tail, tail_problem = None, problem.strerror or str(problem)
        hostname, fqdn = self._names()
        sender = self.settings["from"] or f"mirror@{fqdn}"
        mail = mailtext.message(
            mailtext.subject(event, kind, hostname),
            mailtext.body(event, kind, view, zone, tail, tail_problem),
            sender, recipients)
        self.send(mail, sender, recipients, f"{event.taskname}: the {kind} mail")

    def send(self, mail: EmailMessage, sender: str, recipients: tuple[str, ...],
             what: str) -> bool:
        """Deliver *mail* through the configured server; problems are logged, never raised.

        Args:
            what: names the mail in log messages, e.g. ``debian: the failure mail``.

        Returns:
            True if the server accepted it for at least one recipient.
        """
        import smtplib  # lazy: see the module docstring
        import ssl

        settings = self.settings
        password = None
        if settings["user"] is not None:
            try:
                password = Path(settings["password_file"]).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as problem:
                log.error("%s was not sent: cannot read password_file %s of [%s] in plugin.ini "
                          "(%s)", what, settings["password_file"], self.name.lower(), problem)
                return False
            password = password.rstrip("\r\n")
        server = f"{settings['host']}:{self.port}"
        try:
            with self._connect() as smtp:
                if settings["starttls"]:
                    smtp.starttls(context=ssl.create_default_context())
                if password is not None:
                    smtp.login(settings["user"], password)
                refused = smtp.send_message(mail, sender, list(recipients))
        except (OSError, smtplib.SMTPException) as problem:
            log.error("%s was not sent through %s: %s", what, server,
                      str(problem) or type(problem).__name__)
            return False
        if refused:
            log.warning("%s: %s refused %s", what, server,
                        ", ".join(f"{address} ({code} {reply.decode(errors='replace')})"
                                  for address, (code, reply) in refused.items()))
        log.info("%s was sent to %s through %s", what,
                 ", ".join(address for address in recipients if address not in refused), server)
        return True

    def _connect(self) -> smtplib.SMTP:
        import smtplib  # lazy: see the module docstring
        import ssl

        settings = self.settings
        if settings["ssl"]:
            return smtplib.SMTP_SSL(settings["host"], self.port, timeout=settings["timeout"],
                                    context=ssl.create_default_context())
        return smtplib.SMTP(settings["host"], self.port, timeout=settings["timeout"])

    def _names(self) -> tuple[str, str]:
        # Looked up on first use, on this plugin's thread: getfqdn may wait for DNS.
        if self._hostname is None or self._fqdn is None:
            self._hostname = socket.gethostname()
            self._fqdn = socket.getfqdn()
        return self._hostname, self._fqdn


def conflicts(settings: dict[str, Any]) -> list[str]:
    """What is wrong with *settings* taken together (each key alone is valid); [] if nothing."""
    problems = []
    if settings.get("starttls") and settings.get("ssl"):
        problems.append(_("starttls and ssl are both on; choose one (ssl: TLS from the start, "
                          "usually port 465; starttls: upgrade a plain connection, usually 587)"))
    if (settings.get("user") is None) != (settings.get("password_file") is None):
        problems.append(_("user and password_file go together; set both to log in, or neither"))
    return problems
