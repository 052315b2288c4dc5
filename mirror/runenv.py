# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``MIRROR_*`` variables a run's programs get: the command kind's scripts and the hooks.

tunasync's ``TUNASYNC_*`` variables under mirror's names, so that a tunasync script needs
only its variable names changed.
"""
from __future__ import annotations

NAME_VARIABLE = "MIRROR_NAME"
LOCALDIR_VARIABLE = "MIRROR_LOCALDIR"
UPSTREAM_VARIABLE = "MIRROR_UPSTREAM"
LOGFILE_VARIABLE = "MIRROR_LOGFILE"
STAGE_VARIABLE = "MIRROR_STAGE"
# A hook's only: which hook it is, how the sync ended, and its last stage's exit code.
HOOK_VARIABLE = "MIRROR_HOOK"
RESULT_VARIABLE = "MIRROR_RESULT"
EXIT_CODE_VARIABLE = "MIRROR_EXIT_CODE"


def run_environment(name: str, localdir: str | None, upstream: str | None,
                    log_path: str) -> dict[str, str]:
    """The variables every program of a run gets (empty text for what the task lacks)."""
    return {
        NAME_VARIABLE: name,
        LOCALDIR_VARIABLE: localdir or "",
        UPSTREAM_VARIABLE: upstream or "",
        LOGFILE_VARIABLE: log_path,
    }
