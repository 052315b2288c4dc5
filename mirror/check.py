# SPDX-License-Identifier: GPL-3.0-or-later
"""``mirrord --check``: what the daemon would do with a config, as a table or as JSON."""
from __future__ import annotations

from datetime import datetime, tzinfo

from mirror.config import MirrorConfig, TaskSection
from mirror.durations import format_duration
from mirror.i18n import _
from mirror.interval import IntervalSchedule
from mirror.kinds import DEFAULT_KIND
from mirror.tables import format_table
from mirror.task import TaskSpec
from mirror.zoneoffsets import offsets_for


def columns() -> tuple[str, ...]:
    """The header of the ``--check`` table, in the user's language."""
    return (_("NAME"), _("TYPE"), _("PRI"), _("ENABLED"), _("SCHEDULE"), _("NEXT RUN"),
            _("TIMEOUT"), _("AUTORETRY"), _("UPSTREAM → LOCALDIR"))


def task_row(section: TaskSection, since: datetime, zone: tzinfo) -> dict[str, object]:
    """One task as ``--check --json`` shows it.

    A task with an error has ``"valid": false``, a null next_run and the values
    as written where they could not be read.
    """
    spec = section.spec
    if spec is None:
        return {
            "name": section.name, "valid": False,
            "type": section.values.get("type", DEFAULT_KIND), "enabled": None,
            "priority": section.values.get("priority"), "time": section.values.get("time"),
            "next_run": None, "timeout": None, "autoretry": None, "argv": [],
            "upstreams": [], "localdir": section.values.get("localdir"),
        }
    next_run = first_run_after(spec, since, zone).isoformat() if spec.enabled else None
    return {
        "name": spec.name, "valid": True, "type": spec.type, "enabled": spec.enabled,
        "priority": spec.priority, "time": spec.time, "next_run": next_run,
        "timeout": spec.timeout, "autoretry": spec.autoretry,
        "argv": [list(stage.argv) for stage in spec.stages()],
        "upstreams": list(spec.upstreams), "localdir": spec.localdir,
        "interval": spec.schedule.seconds if isinstance(spec.schedule, IntervalSchedule)
        else None,
        "randomdelay_offset": spec.spread, "iotimeout": spec.iotimeout,
        "hooks": {"exec_before": list(spec.hooks.before),
                  "exec_on_success": list(spec.hooks.on_success),
                  "exec_on_failure": list(spec.hooks.on_failure)},
    }


def first_run_after(spec: TaskSpec, since: datetime, zone: tzinfo) -> datetime:
    """When *spec* would first run if mirrord started at *since* with no state: a cron task
    at its next time, an interval task at once; each plus its ``randomdelay`` offset."""
    # Through epoch seconds: adding to an aware datetime would lose its fold (DST).
    if spec.schedule.from_end:
        return datetime.fromtimestamp(since.timestamp() + spec.spread, zone)
    return datetime.fromtimestamp(spec.next_slot(since.timestamp(), offsets_for(zone)), zone)


def check_report(config: MirrorConfig, since: datetime, zone: tzinfo) -> dict[str, object]:
    """The ``--check --json`` object: tasks, errors and warnings."""
    return {
        "tasks": [task_row(section, since, zone) for section in config.sections],
        "errors": [issue.as_dict() for issue in config.errors],
        "warnings": [issue.as_dict() for issue in config.warnings],
    }


def _cells(section: TaskSection, row: dict[str, object]) -> tuple[str, ...]:
    spec = section.spec
    if spec is None:
        return (section.name, str(row["type"]), str(row["priority"] or "-"), "-",
                str(row["time"] or "-"), _("not scheduled (errors)"), "-", "-", "-")
    next_run = row["next_run"]
    shown_next = (datetime.fromisoformat(str(next_run)).isoformat(sep=" ", timespec="minutes")
                  if next_run else _("disabled"))
    two_stage = len(spec.stages()) > 1
    return (spec.name, spec.type + (_(" 2-stage") if two_stage else ""), str(spec.priority),
            _("yes") if spec.enabled else _("no"), spec.time, shown_next,
            format_duration(spec.timeout), format_duration(spec.autoretry),
            spec.kind.route(spec))


def render_check(config: MirrorConfig, report: dict[str, object]) -> str:
    """The human-readable ``--check`` output: problems, the task table, a summary."""
    lines: list[str] = []
    if config.errors:
        lines.append(_("errors ({count}):").format(count=len(config.errors)))
        lines.extend(f"  {issue}" for issue in config.errors)
        lines.append("")
    if config.warnings:
        lines.append(_("warnings ({count}):").format(count=len(config.warnings)))
        lines.extend(f"  {issue}" for issue in config.warnings)
        lines.append("")
    if not config.sections:
        lines.append(_("no tasks"))
        return "\n".join(lines)
    rows = [columns()] + [_cells(section, row) for section, row
                        in zip(config.sections, report["tasks"])]  # type: ignore[call-overload]
    lines.append(format_table(rows))
    tasks = config.tasks
    disabled = sum(1 for task in tasks if not task.enabled)
    lines.append("")
    lines.append(_("{sections} tasks: {valid} valid ({disabled} disabled), {invalid} with errors; "
                   "{errors} errors, {warnings} warnings").format(
                       sections=len(config.sections), valid=len(tasks), disabled=disabled,
                       invalid=len(config.sections) - len(tasks), errors=len(config.errors),
                       warnings=len(config.warnings)))
    return "\n".join(lines)
