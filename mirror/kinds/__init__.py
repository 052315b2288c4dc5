# SPDX-License-Identifier: GPL-3.0-or-later
"""The task kinds: one module per kind (``rsync``, ``simple``, ``command``), found here.

Every module of this package that defines ``KIND`` (a :class:`~mirror.kinds.base.TaskKind`)
is a kind, named by ``KIND.name``; adding a kind is adding a module. They are imported the
first time a kind is asked for.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from mirror.kinds.base import COMMON_SETTINGS, DEFAULT_KIND, TaskKind, exit_message, joined_names
from mirror.pluginsettings import Setting

__all__ = ["DEFAULT_KIND", "all_kinds", "kind_named", "kind_names", "kinds_using",
           "result_message", "task_keys", "task_settings"]
_NOT_KINDS = {"base", "sectionvalues"}
_kinds: dict[str, TaskKind[Any]] = {}


def all_kinds() -> tuple[TaskKind[Any], ...]:
    """Every kind, in rank order (rsync first)."""
    if not _kinds:
        found = []
        for module in pkgutil.iter_modules(__path__):
            if module.name in _NOT_KINDS or module.name.startswith("_"):
                continue
            kind = getattr(importlib.import_module(f"{__name__}.{module.name}"), "KIND", None)
            if isinstance(kind, TaskKind):
                found.append(kind)
        for kind in sorted(found, key=lambda kind: (kind.rank, kind.name)):
            _kinds[kind.name] = kind
    return tuple(_kinds.values())


def kind_named(name: str) -> TaskKind[Any] | None:
    """The kind whose ``type`` is *name*, or None."""
    all_kinds()
    return _kinds.get(name)


def kind_names() -> str:
    """The kinds' names for a message: ``rsync or simple or command``."""
    return joined_names([kind.name for kind in all_kinds()])


def task_settings() -> tuple[Setting[Any], ...]:
    """Every key a task section may have, whatever its kind: the common keys, then each
    kind's in rank order, each key once."""
    settings: dict[str, Setting[Any]] = {setting.key: setting for setting in COMMON_SETTINGS}
    for kind in all_kinds():
        for setting in kind.settings:
            settings.setdefault(setting.key, setting)
    return tuple(settings.values())


def task_keys() -> tuple[str, ...]:
    """The keys of :func:`task_settings`."""
    return tuple(setting.key for setting in task_settings())


def kinds_using(key: str) -> tuple[str, ...]:
    """The names of the kinds that read *key* (besides the common keys)."""
    return tuple(kind.name for kind in all_kinds()
                 if any(setting.key == key for setting in kind.settings))


def result_message(type_name: str, exit_code: int) -> str:
    """What a run's last *exit_code* means for a task of *type_name*, in English."""
    kind = kind_named(type_name)
    return exit_message(exit_code) if kind is None else kind.result_message(exit_code)
