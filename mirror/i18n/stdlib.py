# SPDX-License-Identifier: GPL-3.0-or-later
"""The standard library's own messages that ``mirrord`` can show, for mirror.pot.

argparse translates its usage line, its error prefix and its own errors
through gettext's default domain, which the command line makes mirror's
(:func:`mirror.i18n.translate_standard_library`). Extraction finds these
messages here; each must be exactly argparse's text, placeholders included.
Nothing imports this module.
"""
from __future__ import annotations


def _(message: str) -> str:
    """Mark *message* for extraction; argparse translates it itself."""
    return message


ARGPARSE_MESSAGES = (
    _("usage: "),
    _("%(prog)s: error: %(message)s\n"),
    _("argument %(argument_name)s: %(message)s"),
    _("options"),  # Python 3.10 and later
    _("optional arguments"),  # Python 3.9
    _("%(heading)s:"),  # a group's title in --help, Python 3.13 and later
    _("show this help message and exit"),
    _("unrecognized arguments: %s"),
    _("not allowed with argument %s"),
    _("ignored explicit argument %r"),
    _("expected one argument"),
    _("ambiguous option: %(option)s could match %(matches)s"),
    _("invalid choice: %(value)r (choose from %(choices)s)"),
    _("invalid %(type)s value: %(value)r"),
    _("the following arguments are required: %s"),
    _("one of the arguments %s is required"),
)
