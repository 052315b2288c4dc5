# SPDX-License-Identifier: GPL-3.0-or-later
"""Message translation through gettext.

Every message a user sees is wrapped in ``_()``. Catalogues live beside this
file as ``LANG/LC_MESSAGES/mirror.mo``; without one the English text is used.
"""
from __future__ import annotations

import gettext
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent
_translation = gettext.translation("mirror", localedir=str(LOCALE_DIR), fallback=True)


def _(message: str) -> str:
    """Return *message* translated into the user's language, or unchanged."""
    return _translation.gettext(message)
