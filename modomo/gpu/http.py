"""The worker's small HTTP side door: ``GET /health``, ``POST /warmup``, ``GET /metrics``.

``/health`` is open (platform probes send no credentials and it tells nothing but ready or
not). ``/warmup`` loads the models, minutes of GPU time, so with a token it needs
``Authorization: Bearer <token>``; ``/metrics`` likewise with the metrics token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modomo.bearer import bearer_matches

Health = Callable[[], tuple[int, dict[str, Any]]]
"""The HTTP status (200 ready, 503 not) and the body of ``GET /health``."""
Warmup = Callable[[], Awaitable[dict[str, Any]]]


def refused(request: web.Request, token: str, setting: str) -> web.Response | None:
    """A 401 saying what to send when ``token`` is set and the request lacks it."""
    if not token or bearer_matches(request.headers.get("Authorization", ""), token):
        return None
    return web.json_response(
        {"status_code": 401, "detail": f"send 'Authorization: Bearer <{setting}>'"},
        status=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def make_app(
    health: Health, warmup: Warmup, *, warmup_token: str = "", metrics_token: str = ""
) -> web.Application:
    """An aiohttp app answering from the two callbacks; an empty token leaves its route open."""

    async def get_health(request: web.Request) -> web.Response:
        status, body = health()
        return web.json_response(body, status=status)

    async def post_warmup(request: web.Request) -> web.Response:
        denied = refused(request, warmup_token, "MODOMO_WORKER_TOKEN")
        if denied is not None:
            return denied
        return web.json_response(await warmup())

    async def get_metrics(request: web.Request) -> web.Response:
        denied = refused(request, metrics_token, "MODOMO_METRICS_TOKEN")
        if denied is not None:
            return denied
        response = web.Response(body=generate_latest())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/health", get_health)
    app.router.add_post("/warmup", post_warmup)
    app.router.add_get("/metrics", get_metrics)
    return app


async def start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app``; returns the runner (to clean up) and the bound port (``port`` may be 0)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    return runner, bound
