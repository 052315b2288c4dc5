# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests whose slow part is waiting (for a cron minute, for Prometheus's ``for: 1m``) run that
part on a thread from the moment the test is collected, so that the wait overlaps the tests
before it instead of adding to the suite's time.

A test declares its scenario with ``@pytest.mark.background(SCENARIO)``; conftest.py starts
every scenario of the selected tests after collection and closes any left over at the end.
The test, at its turn, calls ``SCENARIO.check()``: it waits for the scenario and raises what
the scenario raised. Run on its own, a test simply waits for its scenario.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path


class Scenario:
    """*run* (given a fresh directory and this object) on a thread; the work it starts is ended
    by the callables it passes to :meth:`on_close`, in reverse order, whatever happened."""

    def __init__(self, name: str, run: Callable[[Path, Scenario], None]) -> None:
        self.name = name
        self._run = run
        self._closers: list[Callable[[], object]] = []
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._base: Path | None = None

    def on_close(self, closer: Callable[[], object]) -> None:
        """Call *closer* when the scenario is over."""
        self._closers.append(closer)

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is not None:
            return
        self._base = Path(tempfile.mkdtemp(prefix="mirror-background-"))
        self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        assert self._base is not None
        try:
            self._run(self._base, self)
        except BaseException as problem:  # raised again by check(), with its traceback
            self._failure = problem

    def check(self, timeout: float) -> None:
        """Wait for the scenario (starting it if nobody did), end what it started, and raise
        its failure, or TimeoutError if it took longer than *timeout* seconds."""
        self.start()
        assert self._thread is not None
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        self.close()
        if alive:
            raise TimeoutError(f"{self.name} took more than {timeout} s")
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """End what the scenario started and remove its directory (idempotent)."""
        while self._closers:
            # one closer's trouble must not leave the others' processes running
            with contextlib.suppress(Exception):
                self._closers.pop()()
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)
            self._base = None
