# SPDX-License-Identifier: GPL-3.0-or-later
"""Build script; the project's metadata lives in pyproject.toml."""
from setuptools import setup

setup()
