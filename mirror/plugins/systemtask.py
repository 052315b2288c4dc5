# SPDX-License-Identifier: GPL-3.0-or-later
"""SystemTask: the log cleaner, a system entry on a cron schedule.

It deletes task logs named ``NAME.log.YYYY-MM-DD`` in [general] logdir, NAME
being a task of the config, once their date is more than ``keep_days`` days
ago, and touches no other file (not a rotated ``mirrord.log.2026-11-01``, nor
the logs of tasks no longer configured).
It runs on this plugin's thread; ``mirrord -t`` lists it as kind ``system``.
"""
from __future__ import annotations

import logging
import os
import re
import stat
from datetime import date, datetime, timedelta

from mirror.cron import CronSchedule
from mirror.i18n import _
from mirror.plugin import UNANSWERED, PluginBase, Setting, SystemTaskInfo

log = logging.getLogger(__name__)

LOG_CLEANER = "logcleaner"
TASK_LOG = re.compile(r"(.+)\.log\.(\d{4}-\d{2}-\d{2})")


def parse_keep_days(text: str) -> int:
    """A whole number of days ≥ 1.

    Raises:
        ValueError: anything else.
    """
    if not re.fullmatch(r"\s*[0-9]+\s*", text) or int(text) < 1:
        raise ValueError(_("'{text}' is not a whole number of days ≥ 1").format(text=text))
    return int(text)


def parse_schedule(text: str) -> str:
    """A cron expression mirror reads (checked now, so plugin.ini errors show in --check)."""
    return CronSchedule.parse(text).expression


def old_task_logs(logdir: str, names: set[str], keep_days: int, today: date) -> list[str]:
    """Paths of the task logs in *logdir* dated more than *keep_days* days before *today*.

    Only regular files named ``NAME.log.YYYY-MM-DD``, with NAME in *names* and a
    real date, count.

    Raises:
        OSError: *logdir* cannot be listed.
    """
    oldest_kept = today - timedelta(days=keep_days)
    found = []
    with os.scandir(logdir) as entries:
        for entry in entries:
            match = TASK_LOG.fullmatch(entry.name)
            if match is None or match.group(1) not in names:
                continue
            if not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                continue
            try:
                dated = date.fromisoformat(match.group(2))
            except ValueError:
                continue
            if dated < oldest_kept:
                found.append(entry.path)
    return sorted(found)


class SystemTask(PluginBase):
    """Schedules the log cleaner and runs it when it comes due."""

    SETTINGS = (
        Setting("keep_days", parse_keep_days, 10, "days of task logs to keep"),
        Setting("schedule", parse_schedule, "0 1 * * *", "when the log cleaner runs (cron)"),
    )

    def enable(self) -> None:
        self.host.register_event_handler("RunSystemTaskEvent", self.on_system_task)
        self.host.schedule_system(LOG_CLEANER, self.settings["schedule"])

    def on_system_task(self, info: SystemTaskInfo) -> None:
        if info.name != LOG_CLEANER:
            return
        try:
            snapshot = self.host.snapshot()
        except UNANSWERED:
            return
        in_use = {task.log_path for task in snapshot.tasks if task.log_path}
        self.clean(snapshot.logdir, {task.name for task in snapshot.tasks},
                   datetime.fromtimestamp(snapshot.taken, snapshot.zone).date(), in_use)

    def clean(self, logdir: str, names: set[str], today: date, in_use: set[str]) -> int:
        """Delete the old logs of the tasks called *names* in *logdir*, except those of
        running tasks (*in_use*).

        Returns:
            How many were deleted.
        """
        try:
            paths = old_task_logs(logdir, names, self.settings["keep_days"], today)
        except OSError as problem:
            log.error("log cleaner: cannot list %s: %s", logdir, problem.strerror or problem)
            return 0
        deleted = 0
        for path in (path for path in paths if path not in in_use):
            try:
                os.unlink(path)
            except OSError as problem:
                log.warning("log cleaner: cannot delete %s: %s", path,
                            problem.strerror or problem)
                continue
            deleted += 1
            log.info("log cleaner: deleted %s", path)
        log.info("log cleaner: %d task logs older than %d days deleted from %s", deleted,
                 self.settings["keep_days"], logdir)
        return deleted
