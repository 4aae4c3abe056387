"""Health, the text check of path and query parameters, and the answer when a server the
API needs is unreachable. (The access log is :mod:`modomo.api.observe`.)"""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg
import structlog
from litestar import Controller, Request, Response, get
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from modomo.api.schemas import Health
from modomo.api.services import Services
from modomo.domain.text import find_problem, problem

MAX_PARAM_CHARS = 1000
"""Longest path or query parameter value accepted."""


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
            await svc.pool.fetchval("SELECT 1", timeout=2)
        except Exception as exc:
            postgres = f"down: {type(exc).__name__}"
        ok = redis == postgres == "ok"
        return Response(
            Health(ok=ok, status="ok" if ok else "degraded", redis=redis, postgres=postgres),
            status_code=200 if ok else 503,
        )


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""A JSON escape of a UTF-16 surrogate: paired (one ordinary character) or lone."""


async def check_text(request: Request[Any, Any, Any]) -> None:
    """Hook before every handler: each path and query parameter must be text PostgreSQL can
    store and at most :data:`MAX_PARAM_CHARS` long; a 400 naming the parameter otherwise.

    Bodies are checked as they decode (:class:`modomo.api.schemas.In`), except for a JSON
    escape of a lone surrogate, which that decoder refuses with a misleading message
    ("Input data was truncated"): a body with a surrogate escape is read here with the
    standard library instead, which keeps lone ones, to name the field.
    """
    if request.method in ("POST", "PATCH", "PUT"):
        body = await request.body()
        if _SURROGATE_ESCAPE.search(body):
            _refuse_lone_surrogate(body)
    params = [*request.path_params.items(), *request.query_params.multi_items()]
    for name, value in params:
        if not isinstance(value, str):
            continue
        label = name if problem(name) is None else repr(name)
        reason = problem(name) or problem(value)
        if reason is None and len(value) > MAX_PARAM_CHARS:
            reason = f"is longer than {MAX_PARAM_CHARS} characters"
        if reason is not None:
            raise ValidationException(f"{label}: {reason}")


def _refuse_lone_surrogate(body: bytes) -> None:
    try:
        found = find_problem(json.loads(body))
    except ValueError:
        return  # not JSON: the decoder's own 400 says so
    if found is not None:
        raise ValidationException(f"{found[0]}: {found[1]} (text must be valid Unicode)")


UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    RedisConnectionError,
    RedisTimeoutError,
)
"""Errors that mean a server is unreachable or going away, not that the request is wrong."""


def unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A 503 saying which server is out of reach, instead of a 500: the client may retry."""
    server = _server_of(exc)
    _access.warning("dependency_unreachable", server=server, error=repr(exc))
    return Response(
        {"status_code": 503, "detail": f"{server} is unreachable right now; try again shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


_SERVERS = (("asyncpg", "PostgreSQL"), ("redis", "Redis"), ("aiobotocore", "object storage"))


def _server_of(exc: BaseException) -> str:
    """Which server ``exc`` came from: its own module, else the library code it passed
    through (a refused TCP connection is a builtin ``OSError`` raised under asyncpg)."""
    modules = [type(exc).__module__]
    frame = exc.__traceback__
    while frame is not None:
        modules.append(str(frame.tb_frame.f_globals.get("__name__", "")))
        frame = frame.tb_next
    for module in modules:
        for prefix, server in _SERVERS:
            if module.startswith(prefix):
                return server
    return "a server Modomo needs"


_access = structlog.get_logger("modomo.api.access")
