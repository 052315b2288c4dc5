# SPDX-License-Identifier: GPL-3.0-or-later
"""Writing files other processes read: a reader sees the old file or the new one, never a part."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

TEMPORARY_ATTEMPTS = 100


def _create_temporary(path: str, dir_fd: int | None) -> tuple[int, str]:
    """A new, empty, private file ``.NAME.RANDOM.tmp`` beside *path* (as tempfile.mkstemp
    makes, without importing tempfile and random for it).

    Raises:
        OSError: it cannot be created.
    """
    directory, name = os.path.split(path if dir_fd is not None else os.path.abspath(path))
    for _attempt in range(TEMPORARY_ATTEMPTS):
        temporary = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        return fd, temporary
    raise FileExistsError(f"no free temporary name beside {path}")


def write_atomically(path: str, text: str | Iterable[str], mode: int = 0o644,
                     dir_fd: int | None = None) -> None:
    """Write *text* to *path*: a temporary file in the same directory, fsync, then a rename
    over *path*; the file gets permissions *mode*, in UTF-8.

    *text* is a str, or an iterable of str pieces written one after the other as they come
    (a generator: the whole text is then never held in memory at once). With *dir_fd*, *path*
    is relative to that open directory, and every step stays in it.

    The permissions are set on the open descriptor, never by name: in a directory that another
    user can change, the temporary name may have become a symbolic link by then.

    Raises:
        OSError: the directory is missing or not writable, or the disk is full;
            *path* is then left as it was.
        Exception: whatever iterating *text* raises (e.g. TypeError from a JSON encoder);
            *path* is then left as it was too.
    """
    fd, temporary = _create_temporary(path, dir_fd)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if isinstance(text, str):
                handle.write(text)
            else:
                handle.writelines(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.rename(temporary, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise
