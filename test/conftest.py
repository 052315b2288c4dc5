# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by all tests: they compare English messages, so mirror (and every mirrord they
start) speaks English whatever language the environment asks for. test_translations.py
asks for Chinese explicitly."""
from __future__ import annotations

import os


def pytest_configure(config) -> None:
    os.environ["LANGUAGE"] = "C"  # gettext reads LANGUAGE first; C means untranslated
    from mirror import i18n

    i18n.activate()
