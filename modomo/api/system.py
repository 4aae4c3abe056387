"""Health."""

from __future__ import annotations

from litestar import Controller, Response, get

from modomo.api.schemas import Health
from modomo.api.services import Services


class HealthController(Controller):
    path = "/health"
    tags = ["system"]

    @get(
        "/",
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
