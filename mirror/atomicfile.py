# SPDX-License-Identifier: GPL-3.0-or-later
"""Writing files other processes read: a reader sees the old file or the new one, never a part."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable


def write_atomically(path: str, text: str | Iterable[str], mode: int = 0o644) -> None:
    """Write *text* to *path*: a temporary file in the same directory, fsync, then os.replace;
    the file gets permissions *mode*, in UTF-8.

    *text* is a str, or an iterable of str pieces written one after the other as they come
    (a generator: the whole text is then never held in memory at once).

    Raises:
        OSError: the directory is missing or not writable, or the disk is full;
            *path* is then left as it was.
        Exception: whatever iterating *text* raises (e.g. TypeError from a JSON encoder);
            *path* is then left as it was too.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                     dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if isinstance(text, str):
                handle.write(text)
            else:
                handle.writelines(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
