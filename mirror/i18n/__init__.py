# SPDX-License-Identifier: GPL-3.0-or-later
"""Message translation through gettext.

Every message a user sees is wrapped in ``_()``. Catalogues live beside this
file as ``LANG/LC_MESSAGES/mirror.mo``; without one the English text is used.
The language comes from ``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES`` or ``LANG``.

The ``.mo`` files are compiled from the ``.po`` files by the build (setup.py):
into the wheel, and beside the ``.po`` files for an editable install
(``pip install -e .``). Nothing is compiled at run time.
"""
from __future__ import annotations

import gettext
from collections.abc import Sequence
from pathlib import Path

DOMAIN = "mirror"
LOCALE_DIR = Path(__file__).resolve().parent
_translation = gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), fallback=True)


def _(message: str) -> str:
    """Return *message* translated into the user's language, or unchanged."""
    return _translation.gettext(message)


def activate(languages: Sequence[str] | None = None) -> None:
    """Choose the catalogue again: for *languages* (such as ``["zh_CN"]``), or, with None,
    from the environment as at import. Messages already made keep their language."""
    global _translation
    _translation = gettext.translation(
        DOMAIN, localedir=str(LOCALE_DIR),
        languages=list(languages) if languages is not None else None, fallback=True)


def translate_standard_library() -> None:
    """Make mirror's catalogue the program's default gettext domain.

    The standard library translates its own messages (argparse's ``usage:``,
    ``error:``, ``invalid choice`` …) through that domain, so mirror.pot carries
    them too (see :mod:`mirror.i18n.stdlib`). Only the program's entry point
    calls this: it changes the whole process.
    """
    gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    gettext.textdomain(DOMAIN)
