# SPDX-License-Identifier: GPL-3.0-or-later
"""SHA-256 without hashlib: hashlib maps OpenSSL's libcrypto, about 3.5 MB of the daemon's
memory, for the few digests mirrord takes."""
from __future__ import annotations

import importlib


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of *data*, as hex.

    Raises:
        ImportError: this Python has no SHA-256 at all.
    """
    # By name: which private module exists depends on the Python version.
    for module in ("_sha2", "_sha256", "hashlib"):  # 3.12+, up to 3.11, the fallback
        try:
            sha256 = importlib.import_module(module).sha256
        except ImportError:
            continue
        return str(sha256(data).hexdigest())
    raise ImportError("no sha256")
