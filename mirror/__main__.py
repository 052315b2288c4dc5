# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m mirror`` behaves exactly like ``mirrord``."""
from __future__ import annotations

import sys

from mirror.cli import main

if __name__ == "__main__":
    sys.exit(main())
