# SPDX-License-Identifier: GPL-3.0-or-later
"""``/``: the status page, rendered on the server from a snapshot.

One self-contained HTML document (inline CSS, no scripts, nothing fetched from
elsewhere) that refreshes itself and turns its table into cards on narrow
screens. Every value is HTML-escaped. Each task row carries
``id="task-NAME"`` and ``data-state`` (the tunasync word from
:func:`mirror.plugins.feeds.jobs_status`) for machines.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, tzinfo
from html import escape

from mirror.plugin import RUNNING, RunResult, Snapshot, TaskView
from mirror.plugins.feeds import human_size, jobs_status, result_message

REFRESH_SECONDS = 60
ABSOLUTE_FORMAT = "%Y-%m-%d %H:%M %Z"
STATE_ORDER = ("syncing", "failed", "paused", "success", "none", "disabled")
STATE_LABELS = {"none": "never run"}
# The results counted as failures (failed, timeout, unattended): those a streak is made of.
COUNTED_FAILURES = frozenset(result for result in RunResult if result.went_wrong)

_STYLE = """
:root{--bg:#f6f8fa;--card:#fff;--text:#1f2328;--muted:#59636e;--line:#d1d9e0;
--success:#1a7f37;--failed:#cf222e;--syncing:#0969da;--paused:#9a6700;--disabled:#818b98;
--none:#818b98}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#151b23;--text:#e6edf3;
--muted:#9198a1;--line:#3d444d;--success:#2ea043;--failed:#da3633;--syncing:#1f6feb;
--paused:#9e6a03;--disabled:#656c76;--none:#656c76}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
header,main,footer{max-width:1200px;margin:0 auto;padding:0 16px}
header{padding-top:20px}
h1{font-size:1.5em;margin:0 0 4px}
.summary{margin:0 0 16px;color:var(--muted)}
.summary .count{display:inline-block;margin:4px 8px 0 0;padding:1px 9px;border-radius:999px;
border:1px solid var(--line);background:var(--card);color:var(--text);white-space:nowrap}
.summary .count::before{content:"";display:inline-block;width:.6em;height:.6em;
border-radius:50%;margin-right:6px;background:var(--c)}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line);
border-radius:8px;overflow:hidden}
th,td{padding:9px 12px;text-align:left;vertical-align:top;border-top:1px solid var(--line)}
th{font-size:.8em;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
border-top:0;background:var(--bg)}
td.name{font-weight:600}
td.upstream div{word-break:break-all;font-size:.85em;
font-family:ui-monospace,"SFMono-Regular",Menlo,monospace}
td.size{white-space:nowrap;text-align:right}
small{display:block;color:var(--muted);font-size:.82em}
.muted{color:var(--muted)}
.state{display:inline-block;padding:1px 10px;border-radius:999px;color:#fff;font-weight:600;
font-size:.85em;background:var(--c);white-space:nowrap}
[data-state=success]{--c:var(--success)}[data-state=failed]{--c:var(--failed)}
[data-state=syncing]{--c:var(--syncing)}[data-state=paused]{--c:var(--paused)}
[data-state=disabled]{--c:var(--disabled)}[data-state=none]{--c:var(--none)}
tr[data-state=disabled] td{color:var(--muted)}
footer{padding:14px 16px 24px;color:var(--muted);font-size:.85em}
a{color:var(--syncing)}
@media (max-width:760px){
thead{display:none}
table,tbody,tr,td{display:block;width:100%}
table{border:0;background:none}
tr{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--c);
border-radius:8px;margin:0 0 12px;padding:6px 0}
td{border:0;padding:4px 12px;display:grid;grid-template-columns:7.5em 1fr;gap:8px;
align-items:baseline}
td::before{content:attr(data-label);color:var(--muted);font-size:.85em}
td.name{font-size:1.1em;display:block}
td.name::before{content:none}
td.size{text-align:left}
}
"""


def relative(when: float, now: float) -> str:
    """*when* as seen from *now*: ``just now``, ``5 min ago``, ``3 h ago``, ``in 2 d``."""
    span = abs(now - when)
    if span < 45:
        return "just now" if when <= now else "in a moment"
    minutes, hours = round(span / 60), round(span / 3600)
    if minutes < 60:
        text = f"{max(1, minutes)} min"
    elif hours < 48:
        text = f"{hours} h"
    else:
        text = f"{round(span / 86400)} d"
    return f"{text} ago" if when <= now else f"in {text}"


def absolute(when: float, zone: tzinfo) -> str:
    """*when* as ``2024-05-01 14:03 UTC`` in *zone*."""
    return datetime.fromtimestamp(when, zone).strftime(ABSOLUTE_FORMAT)


def _when(when: float, snapshot: Snapshot) -> str:
    """A relative time with the absolute one beneath it, as a <time> element."""
    stamp = datetime.fromtimestamp(when, snapshot.zone).isoformat(timespec="seconds")
    return (f'<time datetime="{escape(stamp)}">{escape(relative(when, snapshot.taken))}</time>'
            f"<small>{escape(absolute(when, snapshot.zone))}</small>")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "< 1 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def _state_cell(task: TaskView, word: str, snapshot: Snapshot) -> str:
    cell = f'<span class="state">{escape(STATE_LABELS.get(word, word))}</span>'
    if task.state == RUNNING and task.started is not None:
        stage = f"stage {task.stage}/{task.stages}, " if task.stages and task.stages > 1 else ""
        cell += f"<small>{escape(stage)}started {escape(relative(task.started, snapshot.taken))}"
        cell += "</small>"
    elif task.result in COUNTED_FAILURES and task.consecutive_failures > 1:
        cell += f"<small>{task.consecutive_failures} failures in a row</small>"
    return cell


def _result_cell(task: TaskView, snapshot: Snapshot) -> str:
    if task.result is None:
        return f'<span class="muted">{escape(result_message(task))}</span>'
    details = []
    if task.signal is not None:
        details.append(task.signal)
    elif task.exit_code is not None:
        details.append(f"exit {task.exit_code}")
    if task.last_end is not None:
        details.append(relative(task.last_end, snapshot.taken))
    if task.duration is not None:
        details.append(f"took {_duration(task.duration)}")
    return f"{escape(result_message(task))}<small>{escape(' · '.join(details))}</small>"


def _cell(label: str, css: str, content: str) -> str:
    klass = f' class="{css}"' if css else ""
    # The <div> keeps the content one grid item beside its label in the narrow layout.
    return f'<td data-label="{label}"{klass}><div>{content}</div></td>'


def _row(task: TaskView, snapshot: Snapshot) -> str:
    word = jobs_status(task)
    upstream = task.shown_upstream
    if task.last_success is not None:
        success = _when(task.last_success, snapshot)
    else:
        success = '<span class="muted">never</span>'
    if task.next_run is not None:
        next_run = _when(task.next_run, snapshot)
    else:
        next_run = '<span class="muted">not scheduled</span>'
    size = escape(human_size(task.size)) if task.size is not None else (
        '<span class="muted">unknown</span>')
    cells = (
        ("Task", "name", escape(task.name)),
        ("State", "", _state_cell(task, word, snapshot)),
        ("Last success", "", success),
        ("Last result", "", _result_cell(task, snapshot)),
        ("Next run", "", next_run),
        ("Upstream", "upstream", escape(upstream) if upstream else '<span class="muted">—</span>'),
        ("Size", "size", size),
    )
    body = "".join(_cell(label, css, content) for label, css, content in cells)
    return f'<tr id="task-{escape(task.name)}" data-state="{escape(word)}">{body}</tr>'


def _summary(tasks: tuple[TaskView, ...]) -> str:
    counts = Counter(jobs_status(task) for task in tasks)
    chips = "".join(
        f'<span class="count" data-state="{word}">{counts[word]} '
        f"{escape(STATE_LABELS.get(word, word))}</span>"
        for word in STATE_ORDER if counts[word])
    noun = "task" if len(tasks) == 1 else "tasks"
    return f"{len(tasks)} {noun} {chips}"


def render_page(snapshot: Snapshot, title: str = "Mirror status") -> str:
    """The whole status page for *snapshot*, tasks sorted by name.

    Args:
        snapshot: the daemon as of now; relative times are measured from its ``taken``.
        title: the page heading and <title> (escaped here).
    """
    tasks = snapshot.tasks
    rows = "\n".join(_row(task, snapshot) for task in tasks)
    if not rows:
        rows = '<tr data-state="none"><td colspan="7" class="muted">No tasks configured.</td></tr>'
    heads = "".join(f"<th>{label}</th>" for label in (
        "Task", "State", "Last success", "Last result", "Next run", "Upstream", "Size"))
    generated = absolute(snapshot.taken, snapshot.zone)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<header><h1>{escape(title)}</h1>\n"
        f'<p class="summary">{_summary(tasks)}</p></header>\n'
        f"<main><table>\n<thead><tr>{heads}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n"
        "</table></main>\n"
        f"<footer>Updated {escape(generated)}; this page refreshes every {REFRESH_SECONDS} s. "
        'Machine-readable: <a href="/api/status">/api/status</a> · '
        '<a href="/jobs">/jobs</a> (tunasync) · <a href="/metrics">/metrics</a> (Prometheus)'
        "</footer>\n</body>\n</html>\n")
