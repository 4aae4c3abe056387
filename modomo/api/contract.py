"""The API's whole contract in its OpenAPI document, derived from what each route declares.

Every route states its access (:mod:`modomo.api.auth`); from that and from its shape this
module documents, uniformly, what the route can answer besides success, each with the
error body's schema (``{"status_code", "detail", "extra"}``):

- a role: the security schemes (bearer JWT, ``X-API-Key``; ``?ticket=`` where the route
  takes one), 401, and 403 when the role is above viewer;
- path parameters: 404 (an unknown id);
- a request body: 400 (Litestar adds it for any parameter or body) and 413 (over 1 MB);
- any route that reads Redis, PostgreSQL or the bucket: 503 while one of them is down,
  which :data:`UNAVAILABLE_HANDLERS` turns connection errors into (instead of a 500), with
  ``Retry-After``.

Public routes (health, metrics, the app, the schema) carry no security requirement.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import botocore.exceptions
import redis.exceptions
import structlog
from litestar import Litestar, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ServiceUnavailableException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.spec import Components, Reference, Schema, SecurityScheme
from litestar.routes import HTTPRoute
from litestar.types import ExceptionHandlersMap

from modomo.api.auth import declared_role

SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    "bearer": SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description="HS256 JWT with claims sub, role (viewer|reviewer|admin), exp. An API key "
        "may also be sent as the bearer credential.",
    ),
    "apiKey": SecurityScheme(
        type="apiKey",
        name="X-API-Key",
        security_scheme_in="header",
        description="mdk_<id>_<secret> from `modomo apikey create`",
    ),
    "sseTicket": SecurityScheme(
        type="apiKey",
        name="ticket",
        security_scheme_in="query",
        description="For a browser's EventSource: a ticket from POST "
        "/jobs/{job_id}/events/ticket, valid about a minute, for that job's stream only.",
    ),
}
COMPONENTS = Components(security_schemes=SECURITY_SCHEMES)

_log = structlog.get_logger("modomo.api")


def document(app: Litestar) -> None:
    """Give every declared route its security requirement and error responses."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            access = declared_role(handler)
            if access is None or access == "public" or not handler.include_in_schema:
                continue
            raises: list[type[HTTPException]] = [
                *(handler.raises or ()),
                NotAuthorizedException,
                ServiceUnavailableException,
            ]
            if access != "viewer":
                raises.append(PermissionDeniedException)
            if route.path_parameters:
                raises.append(NotFoundException)
            if "data" in handler.parsed_fn_signature.parameters:
                raises.append(RequestEntityTooLarge)
            handler.raises = list(dict.fromkeys(raises))
            schemes: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
            if handler.opt.get("ticket"):
                schemes.append({"sseTicket": []})
            handler.security = schemes


def set_upload_limit(app: Litestar, max_upload_bytes: int) -> None:
    """Write the configured upload limit into the schema of a presign request's files, so a
    size the schema allows is one the API accepts."""
    schemas = app.openapi_schema.components.schemas or {}
    for name, schema in schemas.items():
        if name.endswith("UploadFile") and isinstance(schema, Schema) and schema.properties:
            size = schema.properties["size_bytes"]
            if isinstance(size, Schema):
                size.maximum = max_upload_bytes


def _unavailable(which: str) -> Any:
    def handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
        _log.warning("dependency_unavailable", dependency=which, error=repr(exc)[:300])
        return Response(
            {"status_code": 503, "detail": f"{which} is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    return handler


UNAVAILABLE_HANDLERS: ExceptionHandlersMap = {
    redis.exceptions.ConnectionError: _unavailable("Redis"),
    redis.exceptions.TimeoutError: _unavailable("Redis"),
    asyncpg.PostgresConnectionError: _unavailable("PostgreSQL"),
    asyncpg.InterfaceError: _unavailable("PostgreSQL"),
    asyncpg.TooManyConnectionsError: _unavailable("PostgreSQL"),
    asyncpg.CannotConnectNowError: _unavailable("PostgreSQL"),
    asyncpg.AdminShutdownError: _unavailable("PostgreSQL"),
    botocore.exceptions.HTTPClientError: _unavailable("object storage"),
    ConnectionError: _unavailable("a backing service"),
    TimeoutError: _unavailable("a backing service"),
}
"""Connection errors of Redis, PostgreSQL and S3 → 503 with Retry-After, never a 500."""
