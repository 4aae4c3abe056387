"""Health, and the access log."""

from __future__ import annotations

import time
from typing import Any

import structlog
from litestar import Controller, Response, get
from litestar.openapi import ResponseSpec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from modomo.api.schemas import Health
from modomo.api.services import Services


class HealthController(Controller):
    path = "/health"
    tags = ["system"]
    opt = {"public": True}

    @get(
        "/",
        responses={503: ResponseSpec(Health, description="Redis or PostgreSQL is down")},
        summary="Liveness and dependencies",
        description='{"ok": true} when Redis and PostgreSQL answer; 503 naming the one '
        "that does not.",
    )
    async def health(self, svc: Services) -> Response[Health]:
        redis = postgres = "ok"
        try:
            await svc.redis.ping()
        except Exception as exc:
            redis = f"down: {type(exc).__name__}"
        try:
            await svc.db.fetchval("SELECT 1", timeout=2)
        except Exception as exc:
            postgres = f"down: {type(exc).__name__}"
        ok = redis == postgres == "ok"
        return Response(
            Health(ok=ok, redis=redis, postgres=postgres), status_code=200 if ok else 503
        )


_access = structlog.get_logger("modomo.api.access")


def access_log(app: ASGIApp) -> ASGIApp:
    """Middleware: one structured line per request (method, route, status, latency)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            params: dict[str, Any] = scope.get("path_params") or {}
            route = scope.get("path_template") or scope["path"]
            fields: dict[str, Any] = {
                "method": scope.get("method"),
                "route": route,
                "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            }
            for key in ("job_id", "scene_id", "dataset_id", "object_id"):
                if key in params:
                    fields[key] = params[key]
            _access.info("request", **fields)

    return middleware
