# SPDX-License-Identifier: GPL-3.0-or-later
"""Turn a config file's bytes into text: UTF-8, or a legacy encoding guessed by chardet."""
from __future__ import annotations

import re

from mirror.i18n import _

_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def decode_config_bytes(data: bytes) -> tuple[str, str | None]:
    """Decode a config file.

    Args:
        data: the file's bytes.

    Returns:
        ``(text, warning)``; *warning* is None for UTF-8 and otherwise says
        which encoding was guessed.

    Raises:
        ValueError: the bytes are binary or cannot be decoded; the message
            says what is expected.
    """
    if b"\x00" in data:
        raise ValueError(_("this is a binary file, not an INI text file (it contains NUL bytes)"))
    warning = None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        import chardet  # only legacy files pay for the import

        guess = chardet.detect(data)
        encoding = guess.get("encoding")
        if not encoding:
            raise ValueError(_("not UTF-8 ({error}), and no other encoding fits; "
                               "save the file as UTF-8").format(error=error)) from None
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise ValueError(_("not UTF-8, and not {encoding} either; save the file as UTF-8")
                             .format(encoding=encoding)) from None
        warning = _("not UTF-8; read as {encoding} (chardet's guess, {confidence:.0%} sure); "
                    "save the file as UTF-8 to silence this").format(
                        encoding=encoding, confidence=guess.get("confidence") or 0.0)
    if _CONTROL.search(text):
        raise ValueError(_("this is a binary file, not an INI text file "
                           "(it contains control characters)"))
    return text, warning
