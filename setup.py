# SPDX-License-Identifier: GPL-3.0-or-later
"""Build script; the project's metadata lives in pyproject.toml.

It adds one step to ``build_py``: every message catalogue
``mirror/i18n/LANG/LC_MESSAGES/DOMAIN.po`` is compiled with Babel (a build
requirement) into ``DOMAIN.mo``, which mirror.i18n loads at run time:

* for a wheel (``python -m build``, ``pip install .``), into the build
  directory, so that the wheel carries the ``.mo`` files;
* for an editable install (``pip install -e .``, setuptools' ``editable_mode``),
  beside the ``.po`` files in the source tree, where the package runs from
  (.gitignore keeps them out of git). Run it again after editing a ``.po``.

Untranslated and fuzzy entries are left out (their messages stay English); a
translation whose placeholders differ from its message's stops the build.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

I18N_PACKAGE = "mirror.i18n"
CATALOGUES = "*/LC_MESSAGES/*.po"
BRACE_FIELD = re.compile(r"\{[^{}]*\}")  # a str.format() field, such as {name} or {size:g}


def compile_catalogue(po: Path, mo: Path) -> None:
    """Compile *po* into *mo* (written whole or not at all); untranslated and fuzzy
    entries are left out, so their messages stay English.

    Raises:
        SystemExit: Babel is missing, or a translation's placeholders do not match
            its message's (a ``.format()`` of it would fail at run time).
    """
    try:
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po
    except ImportError:
        raise SystemExit("building mirror needs Babel to compile the message catalogues: "
                         "pip install Babel (pyproject.toml lists it in [build-system] "
                         "requires)") from None
    with po.open("rb") as source:
        catalog = read_po(source, abort_invalid=True)
    problems = [f"{po}:{message.lineno}: {message.id!r}: {error}"
                for message, errors in catalog.check() if not message.fuzzy
                for error in errors]
    problems += [f"{po}:{message.lineno}: {message.id!r}: the translation's {{fields}} differ "
                 "from the message's"
                 for message in catalog
                 if message.id and message.string and not message.fuzzy
                 and (sorted(BRACE_FIELD.findall(str(message.string)))
                      != sorted(BRACE_FIELD.findall(str(message.id))))]
    if problems:
        raise SystemExit("broken translations:\n" + "\n".join(problems))
    mo.parent.mkdir(parents=True, exist_ok=True)
    partial = mo.with_name(mo.name + ".part")
    with partial.open("wb") as target:
        write_mo(target, catalog)
    os.replace(partial, mo)


class BuildPyWithCatalogues(build_py):
    """``build_py`` that also compiles the message catalogues (see the module docstring)."""

    def run(self) -> None:
        super().run()
        for po, mo in self._catalogues():
            self.announce(f"compiling {po} -> {mo}", level=2)
            compile_catalogue(po, mo)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not getattr(self, "editable_mode", False):
            outputs += [str(mo) for _po, mo in self._catalogues()]
        return outputs

    def _catalogues(self) -> list[tuple[Path, Path]]:
        """(.po in the source tree, .mo to write) for every catalogue."""
        source = Path(self.get_package_dir(I18N_PACKAGE))
        if getattr(self, "editable_mode", False):  # setuptools >= 64: run from the source tree
            target = source
        else:
            target = Path(self.build_lib, *I18N_PACKAGE.split("."))
        return [(po, target / po.relative_to(source).with_suffix(".mo"))
                for po in sorted(source.glob(CATALOGUES))]


setup(cmdclass={"build_py": BuildPyWithCatalogues})
