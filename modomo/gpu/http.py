"""The worker's small HTTP side door: ``GET /health``, ``POST /warmup``, ``GET /metrics``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Health = Callable[[], tuple[int, dict[str, Any]]]
"""The HTTP status (200 ready, 503 not) and the body of ``GET /health``."""
Warmup = Callable[[], Awaitable[dict[str, Any]]]


def make_app(health: Health, warmup: Warmup) -> web.Application:
    """An aiohttp app answering from the two callbacks."""

    async def get_health(request: web.Request) -> web.Response:
        status, body = health()
        return web.json_response(body, status=status)

    async def post_warmup(request: web.Request) -> web.Response:
        return web.json_response(await warmup())

    async def get_metrics(request: web.Request) -> web.Response:
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
