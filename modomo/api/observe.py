"""One middleware around every route: the access log and the request metrics.

Litestar's Prometheus middleware builds a URL object and looks its label children up four
times per request; with the access log as a second middleware that was a tenth of a scene
read. This does both in one pass (auth is :func:`modomo.api.auth.role_guard`'s):

- **Access log.** One structured line per request: method, route, status, latency and the
  ids in the path; never credentials.
- **Metrics.** ``litestar_requests_total``, ``litestar_request_duration_seconds``,
  ``litestar_requests_in_progress`` and ``litestar_requests_error_total``, with the names
  and labels (method, path template, status code, app name) Litestar's Prometheus
  middleware used, so dashboards and alerts read them unchanged.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

APP_NAME = "modomo"
_LABELS = ("method", "path", "status_code", "app_name")
REQUESTS = Counter("litestar_requests_total", "Total requests", _LABELS)
DURATION = Histogram("litestar_request_duration_seconds", "Request duration, in seconds", _LABELS)
ERRORS = Counter("litestar_requests_error_total", "Total errors in requests", _LABELS)
IN_PROGRESS = Gauge(
    "litestar_requests_in_progress",
    "Total requests currently in progress",
    _LABELS,
    multiprocess_mode="livesum",
)
_IDS = ("job_id", "scene_id", "dataset_id", "object_id")

_access = structlog.get_logger("modomo.api.access")
_children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
_running: dict[tuple[str, str], Any] = {}


def _series(method: str, route: str, status: int) -> tuple[Any, Any, Any]:
    """The label children for one (method, route, status), looked up once."""
    found = _children.get((method, route, status))
    if found is None:
        values = (method, route, status, APP_NAME)
        found = _children[(method, route, status)] = (
            REQUESTS.labels(*values),
            DURATION.labels(*values),
            ERRORS.labels(*values),
        )
    return found


def observed(app: ASGIApp) -> ASGIApp:
    """The middleware (Litestar runs it inside routing, so the route is known)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]  # type: ignore[typeddict-item]  # http only, above
        route: str = scope.get("path_template") or scope["path"]
        status = 500
        running = _running.get((method, route))
        if running is None:
            running = _running[(method, route)] = IN_PROGRESS.labels(method, route, 200, APP_NAME)
        running.inc()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, capture)
        except HTTPException as exc:
            status = exc.status_code  # answered by Litestar's exception handling, outside
            raise
        finally:
            running.dec()
            elapsed = time.perf_counter() - started
            requests, duration, errors = _series(method, route, status)
            requests.inc()
            duration.observe(elapsed)
            if status >= 500:
                errors.inc()
            params: dict[str, Any] = scope.get("path_params") or {}
            fields: dict[str, Any] = {
                "method": method,
                "route": route,
                "status": status,
                "latency_ms": round(elapsed * 1000, 2),
            }
            for key in _IDS:
                if key in params:
                    fields[key] = params[key]
            _access.info("request", **fields)

    return middleware
