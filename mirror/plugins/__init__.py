# SPDX-License-Identifier: GPL-3.0-or-later
"""The plugins that come with mirror, each an entry point of this distribution."""
