# SPDX-License-Identifier: GPL-3.0-or-later
"""Writing files other processes read: a reader sees the old file or the new one, never a part."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

TEMPORARY_ATTEMPTS = 100


def _create_temporary(path: str) -> tuple[int, str]:
    """A new, empty, private file ``.NAME.RANDOM.tmp`` beside *path* (as tempfile.mkstemp
    makes, without importing tempfile and random for it).

    Raises:
        OSError: it cannot be created.
    """
    directory, name = os.path.split(os.path.abspath(path))
    for _attempt in range(TEMPORARY_ATTEMPTS):
        temporary = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        return fd, temporary
    raise FileExistsError(f"no free temporary name beside {path}")


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
    fd, temporary = _create_temporary(path)
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
