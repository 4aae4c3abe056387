"""The API's whole contract in its OpenAPI document, derived from what each route declares.

Every route states its access (:mod:`modomo.api.auth`); from that and from its shape this
module documents, uniformly, what the route can answer besides success, each with the
error body's schema (``{"status_code", "detail", "extra"}``):

- a role: the security schemes (bearer JWT, ``X-API-Key``; ``?ticket=`` where the route
  takes one), 401, and 403 when the role is above viewer;
- path parameters: 404 (an unknown id);
- a request body: 400 (Litestar adds it for any parameter or body) and 413 (over 1 MB);
- a write (POST, PUT, PATCH, DELETE): 429 past the caller's rate limit, with ``Retry-After``;
- any route that reads Redis, PostgreSQL or the bucket: 503 while one of them is down
  (:func:`modomo.api.system.unavailable` answers it, with ``Retry-After``).

Public routes (health, metrics, the app, the schema) carry no security requirement.

Two repairs of what Litestar 2.25 generates, so the document is exactly what the API
enforces: the schemas of request and response bodies are msgspec's own
(:func:`exact_body_schemas`; Litestar's drop a zero minimum, constraints inside optional
lists, tuple lengths and ``additionalProperties: false``), and OPTIONS answers list every
method of the path (:func:`allow_header`; Litestar's list only the methods registered when
the route was first made).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import msgspec
import structlog
from litestar import Litestar, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ServiceUnavailableException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.spec import Components, OpenAPIType, Reference, Schema, SecurityScheme
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, ExceptionHandlersMap, Message, Receive, Scope, Send

from modomo.api.auth import declared_role
from modomo.api.schemas import NO_NUL
from modomo.domain.text import find_problem

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
            if set(handler.http_methods) & {"POST", "PUT", "PATCH", "DELETE"}:
                raises.append(TooManyRequestsException)  # modomo.api.ratelimit
            handler.raises = list(dict.fromkeys(raises))
            schemes: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
            if handler.opt.get("ticket"):
                schemes.append({"sseTicket": []})
            handler.security = schemes


def set_upload_limit(app: Litestar, max_upload_bytes: int) -> None:
    """Write the configured upload limit into the schema of a presign request's files (after
    :func:`exact_body_schemas`), so a size the schema allows is one the API accepts."""
    schemas: dict[str, Any] = app.openapi_schema.components.schemas or {}
    upload = schemas.get("UploadFile")
    if isinstance(upload, dict):
        upload["properties"]["size_bytes"]["maximum"] = max_upload_bytes


def text_parameters(app: Litestar, max_chars: int) -> None:
    """State what :func:`modomo.api.system.check_text` enforces on every path and query
    string without a pattern of its own: no NUL, at most ``max_chars`` characters. A value
    the document allows is then one the API accepts (schemathesis sends NUL otherwise)."""
    # A ``{name:path}`` parameter reaches the check with its leading slash: one less.
    slashed = {
        (route.path_format, name)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for name, definition in route.path_parameters.items()
        if definition.type is Path
    }
    for path, item in (app.openapi_schema.paths or {}).items():
        for operation in (item.get, item.put, item.post, item.patch, item.delete):
            for parameter in (operation.parameters or []) if operation else []:
                schema = getattr(parameter, "schema", None)
                if not isinstance(schema, Schema) or schema.pattern is not None:
                    continue
                kinds = [schema, *(s for s in schema.one_of or [] if isinstance(s, Schema))]
                if any(k.type == OpenAPIType.STRING for k in kinds):
                    schema.pattern = NO_NUL
                    if schema.max_length is None:
                        name = getattr(parameter, "name", "")
                        schema.max_length = max_chars - ((path, name) in slashed)


def _structs(annotation: Any, found: set[type[msgspec.Struct]]) -> None:
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        found.add(annotation)
    for arg in typing.get_args(annotation):
        _structs(arg, found)


def exact_body_schemas(app: Litestar) -> None:
    """Replace the component schema of every msgspec Struct a route takes or returns with
    the JSON Schema msgspec derives from the same Struct it validates with."""
    found: set[type[msgspec.Struct]] = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.include_in_schema:
                continue
            signature = handler.parsed_fn_signature
            _structs(signature.return_type.annotation, found)
            if "data" in signature.parameters:
                _structs(signature.parameters["data"].annotation, found)
    _, exact = msgspec.json.schema_components(
        sorted(found, key=lambda t: t.__name__), ref_template="#/components/schemas/{name}"
    )
    schemas = app.openapi_schema.components.schemas
    if schemas is None:
        return
    for name, schema in exact.items():
        # A plain dict serialises as it is (Litestar's spec objects pass dicts through).
        schemas[name] = schema


def _json_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"status_code": exc.status_code, "detail": exc.detail}
    if exc.extra:
        body["extra"] = exc.extra
    return Response(body, status_code=exc.status_code, media_type="application/json")


JSON_ERRORS: ExceptionHandlersMap = {HTTPException: _json_error}
"""For a route whose success is not JSON (the SSE stream): its errors still are."""


def allow_header(app: ASGIApp) -> ASGIApp:
    """Middleware: an OPTIONS answer's ``Allow`` lists every method of the matched path."""
    methods: dict[str, str] = {}

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "OPTIONS":  # type: ignore[comparison-overlap]
            await app(scope, receive, send)
            return
        if not methods:
            for route in scope["litestar_app"].routes:
                if isinstance(route, HTTPRoute):
                    methods[route.path_format] = ", ".join(sorted(route.methods))

        async def fixed(message: Message) -> None:
            allowed = methods.get(scope.get("path_template") or "")
            if message["type"] == "http.response.start" and allowed:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message = {**message, "headers": [*headers, (b"allow", allowed.encode())]}
            await send(message)

        await app(scope, receive, fixed)

    return middleware


def _integral(value: Any) -> Any:
    """JSON Schema counts 3.0 as an integer; msgspec's strict mode does not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


async def strict_bodies(request: Request[Any, Any, Any]) -> None:
    """``before_request``: a JSON body is checked with JSON Schema's types, as the document
    states them (``0`` is not ``false``, ``"1"`` is not ``1``; ``3.0`` is ``3``). Litestar
    converts every input leniently, as it must for query strings; a body has real JSON
    types, and the document promises them."""
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return
    body = await request.body()
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return  # an empty or malformed body: Litestar's own 400 says so
    try:
        msgspec.convert(_integral(value), data.annotation, strict=True)
    except msgspec.ValidationError as exc:
        unstorable = find_problem(value)
        if unstorable is not None:  # named by its path, dict keys included (attrs.colour)
            raise ValidationException(f"{unstorable[0]}: {unstorable[1]}") from None
        message, _, where = str(exc).partition(" - at ")
        # "`$.stages.depth`", or "`key` in `$.attrs`" for a dict's key
        path = where.rsplit("`$", 1)[-1].strip("`.") if "`$" in where else ""
        raise ValidationException(
            f"Validation failed for {request.method} {request.url.path}",
            extra=[{"message": message, "key": path or "data", "source": "body"}],
        ) from None
