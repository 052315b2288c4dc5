# SPDX-License-Identifier: GPL-3.0-or-later
"""The status page's routes: which path gives which document, and the error answers.

Each request takes its own snapshot through the host (a round trip into the
daemon's loop); when the loop does not answer, the request gets a 503.

Each document's module is imported at its route's first request, so an idle
status page holds none of them: :mod:`~mirror.plugins.slatefish.metrics` with
prometheus_client (several MB of resident memory with the ssl and hashlib it
brings; the first ``/metrics`` takes some 0.1 s longer), the page with
:mod:`html`'s entity table, the API.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING

from mirror.plugin import UNANSWERED
from mirror.plugins.feeds import jobs_document
from mirror.plugins.slatefish.runtally import RunTally
from mirror.plugins.slatefish.server import Response, text_response

if TYPE_CHECKING:
    from mirror.plugin import HostAPI, Snapshot
    from mirror.plugins.slatefish.metrics import MetricsPage, Scrape

log = logging.getLogger(__name__)

SNAPSHOT_TIMEOUT = 5.0
METHODS = ("GET", "HEAD")
COMMON_HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))
# Nothing but the inline style may load: the page works on a closed network and cannot be
# made to fetch anything.
PAGE_HEADERS = (*COMMON_HEADERS, ("Content-Security-Policy",
                                  "default-src 'none'; style-src 'unsafe-inline'; "
                                  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"))
JSON_TYPE = "application/json; charset=utf-8"


class StatusApplication:
    """Answers ``(method, path)`` for the server; called on its connection threads.
    *tally* counts the run ends that ``/metrics`` reports."""

    def __init__(self, host: HostAPI, tally: RunTally | None = None) -> None:
        self._host = host
        self._tally = tally or RunTally()
        self._metrics_page: MetricsPage | None = None  # made at the first /metrics
        self._routes: dict[str, Callable[[], Response]] = {
            "/": self._page, "/api/status": self._api, "/jobs": self._jobs,
            "/metrics": self._metrics}

    def __call__(self, method: str, path: str) -> Response:
        """The response to *method* on *path*: 405 unless GET or HEAD, 404 for unknown paths,
        503 when the daemon does not answer."""
        if method not in METHODS:
            return text_response(HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD are allowed",
                                 (("Allow", ", ".join(METHODS)), *COMMON_HEADERS))
        route = self._routes.get(path)
        if route is None:
            return text_response(HTTPStatus.NOT_FOUND,
                                 "not found; try /, /api/status, /jobs or /metrics",
                                 COMMON_HEADERS)
        try:
            return route()
        except UNANSWERED as problem:
            log.warning("status page: mirrord did not answer for %s: %s", path,
                        str(problem) or "timed out")
            return text_response(HTTPStatus.SERVICE_UNAVAILABLE,
                                 "mirrord is not answering (stopping or busy); try again soon",
                                 (("Retry-After", "10"), *COMMON_HEADERS))

    def _snapshot(self) -> Snapshot:
        return self._host.snapshot(SNAPSHOT_TIMEOUT)

    def _page(self) -> Response:
        from mirror.plugins.slatefish.page import render_page

        return Response(HTTPStatus.OK, render_page(self._snapshot()).encode(),
                        "text/html; charset=utf-8", PAGE_HEADERS)

    def _api(self) -> Response:
        from mirror.viewjson import api_document

        return _json(api_document(self._snapshot()))

    def _jobs(self) -> Response:
        return _json(jobs_document(self._snapshot()))

    def _metrics_source(self) -> Scrape:
        from mirror.plugins.slatefish.metrics import Scrape

        return Scrape(self._snapshot(), self._host.system_conditions(), self._host.general,
                      self._host.plugin_backlogs(), self._tally.totals())

    def _metrics(self) -> Response:
        from mirror.plugins.slatefish import metrics

        page = self._metrics_page
        if page is None:
            # Two first scrapes at once may each make one; it keeps nothing that matters
            # (a cache of mount points), so whichever is kept serves the same.
            page = self._metrics_page = metrics.MetricsPage(self._metrics_source)
        return Response(HTTPStatus.OK, page.text(), metrics.CONTENT_TYPE,
                        COMMON_HEADERS)


def _json(document: object) -> Response:
    body = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    return Response(HTTPStatus.OK, body.encode(), JSON_TYPE, COMMON_HEADERS)
