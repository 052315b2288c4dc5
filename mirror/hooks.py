# SPDX-License-Identifier: GPL-3.0-or-later
"""A run's hooks (``exec_before``, ``exec_on_success``, ``exec_on_failure``) as stages.

A hook runs as a stage of the run: in its own process group like every stage, under the run's
timeout and ``iotimeout``, with its output in the run's log, and with the run's ``MIRROR_*``
variables (:mod:`mirror.runenv`) plus which hook it is, the sync's result and its exit code.
"""
from __future__ import annotations

from mirror.runenv import (
    EXIT_CODE_VARIABLE,
    HOOK_VARIABLE,
    RESULT_VARIABLE,
    run_environment,
)
from mirror.task import Stage, StageRole, TaskSpec


def hook_argv(task: TaskSpec, role: StageRole) -> tuple[str, ...]:
    """The command of *task*'s hook for *role* (empty: the task has none)."""
    hooks = task.hooks
    return {StageRole.BEFORE: hooks.before, StageRole.ON_SUCCESS: hooks.on_success,
            StageRole.ON_FAILURE: hooks.on_failure}.get(role, ())


def hook_stage(task: TaskSpec, role: StageRole, upstream: str | None, log_path: str,
               result: str = "", exit_code: int | None = None) -> Stage | None:
    """*task*'s hook for *role* as a stage, or None when it has none.

    Args:
        task: the task.
        role: BEFORE, ON_SUCCESS or ON_FAILURE.
        upstream: the run's upstream.
        log_path: the run's task log.
        result: how the sync ended (``success``, ``failed``, ``stalled``; empty before it).
        exit_code: its last stage's exit code (None: killed by a signal, or not run yet).
    """
    argv = hook_argv(task, role)
    if not argv:
        return None
    environ = {**run_environment(task.name, task.localdir, upstream, log_path),
               HOOK_VARIABLE: role.value, RESULT_VARIABLE: result,
               EXIT_CODE_VARIABLE: "" if exit_code is None else str(exit_code)}
    return Stage(argv, environ, role)
