"""Who is calling: JWT bearer tokens (HS256) for people, API keys for integrations, and
short-lived job-scoped tickets for a browser's ``EventSource``, which cannot send headers.

Roles are ordered: viewer < reviewer < admin. Every route declares its access in ``opt``:
``{"role": "viewer" | "reviewer" | "admin"}``, or ``{"public": True}`` for the few that
need no credentials. Access fails closed: :func:`check_declared` refuses to build an app
with a route that declares neither, and :func:`role_guard` denies such a route anyway. No
valid credentials: 401; a role too low: 403; both with a JSON body saying why.

A route may also accept a ticket: ``opt={"role": "viewer", "ticket": "job_id"}`` lets a
``?ticket=`` minted by :func:`issue_ticket` for that route's ``job_id`` stand in for the
headers. Tickets are signed with a key derived from the JWT secret for that one purpose, so
a ticket is never a bearer token and a bearer token is never a ticket.

Everything a credential says about its caller goes through :func:`caller_from_claims`, the
one place a claim is read. A caller belongs to one organisation: a token's ``org`` claim
(none: the default organisation, so tokens from before organisations keep working), an API
key's ``org`` column. Roles are per organisation: an admin is its own organisation's admin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import jwt
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.routes import HTTPRoute

from modomo.domain.orgs import DEFAULT_ORG, valid_org

Role = Literal["viewer", "reviewer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "reviewer", "admin")
KEY_PREFIX = "mdk_"
TICKET_AUDIENCE = "modomo:sse"
_TICKET_KEY_INFO = b"modomo sse ticket v1"


class UndeclaredAccess(RuntimeError):
    """A route declares neither a role nor that it is public: the app will not start."""


@dataclass(frozen=True, slots=True)
class Caller:
    subject: str
    role: Role
    via: Literal["jwt", "api_key", "ticket"]
    org: str = DEFAULT_ORG


def issue_token(
    secret: str, subject: str, role: Role, ttl_s: int = 3600, org: str | None = None
) -> str:
    """A signed bearer token (what the auth service of a deployment would hand out); with
    no ``org`` it names none, and its caller is in the default organisation."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "role": role, "iat": now, "exp": now + ttl_s}
    if org is not None:
        claims["org"] = org
    return jwt.encode(claims, secret, algorithm="HS256")


def _ticket_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _TICKET_KEY_INFO, hashlib.sha256).digest()


def issue_ticket(
    secret: str, caller: Caller, job_id: str, ttl_s: int, after: str = ""
) -> tuple[str, int]:
    """A ticket that lets ``caller`` open the event stream of ``job_id`` for ``ttl_s``
    seconds, resuming after the entry ``after`` (from the start when empty); returns it
    with its expiry (Unix seconds). It opens nothing else."""
    expires = int(time.time()) + ttl_s
    claims = {
        "sub": caller.subject,
        "role": caller.role,
        "org": caller.org,
        "job": job_id,
        "aud": TICKET_AUDIENCE,
        "exp": expires,
    }
    if after:
        claims["after"] = after
    return jwt.encode(claims, _ticket_key(secret), algorithm="HS256"), expires


def new_api_key() -> tuple[str, str, str]:
    """(key id, full key to show once, hash of its secret to store)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}", _hash(secret)


def _hash(secret: str) -> str:
    # The secret is 256 random bits, so a plain digest is as strong as a slow KDF here.
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(
    conn: Any, role: Role, name: str = "", org: str = DEFAULT_ORG, created_by: str = ""
) -> str:
    """A new key of ``org`` with ``role``; returns the full key (shown once)."""
    key_id, full, digest = new_api_key()
    await conn.execute(
        "INSERT INTO api_keys (key_id, secret_hash, role, name, org, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        key_id,
        digest,
        role,
        name,
        org,
        created_by,
    )
    return full


def caller_from_claims(claims: dict[str, Any], via: Literal["jwt", "ticket"]) -> Caller:
    """The caller a verified token describes; 401 when its claims do not make one."""
    role = claims.get("role")
    if role not in ROLES:
        raise NotAuthorizedException(f"the token's role {role!r} is not one of {ROLES}")
    org = claims.get("org", DEFAULT_ORG)
    if not valid_org(org):
        raise NotAuthorizedException(
            f"the token's org {str(org)[:80]!r} is not an organisation id "
            "(lower-case letters, digits, _ and -, at most 63)"
        )
    return Caller(subject=str(claims["sub"]), role=role, via=via, org=org)


def _verify(token: str, key: str | bytes, what: str, **options: Any) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["HS256"],  # never the token's own choice: no "none", no RS/HS swap
            options={"require": ["exp", "sub", "role"]},
            **options,
        )
    except jwt.ExpiredSignatureError:
        raise NotAuthorizedException(f"the {what} has expired") from None
    except jwt.InvalidTokenError as exc:
        raise NotAuthorizedException(f"invalid {what}: {exc}") from None
    return claims


class TokenCache:
    """Bearer tokens already verified, with their callers, until each one's ``exp``.

    A browser sends the same token with every request; checking its HMAC and parsing its
    claims once is enough. Keyed by the whole token (signature included), so only a token
    this secret verified can ever be found here.
    """

    def __init__(self, secret: str, max_tokens: int = 10_000) -> None:
        self.secret = secret
        self.max_tokens = max_tokens
        self._known: dict[str, tuple[Caller, float]] = {}

    def caller(self, token: str) -> Caller:
        """The token's caller; NotAuthorizedException (401) saying why when it is not valid."""
        known = self._known.get(token)
        if known is not None:
            if time.time() < known[1]:
                return known[0]
            del self._known[token]
        claims = _verify(token, self.secret, "bearer token")
        caller = caller_from_claims(claims, "jwt")
        if len(self._known) >= self.max_tokens:
            self._known.clear()
        self._known[token] = (caller, float(claims["exp"]))
        return caller


async def authenticate(
    connection: ASGIConnection[Any, Any, Any, Any], ticket_param: str | None = None
) -> Caller:
    """The caller of ``connection``: from ``X-API-Key``, ``Authorization: Bearer``, or, on
    a route that takes one (``ticket_param`` names its path parameter), a ``?ticket=``."""
    header = connection.headers.get("authorization", "")
    api_key = connection.headers.get("x-api-key", "")
    scheme, _, credential = header.partition(" ")
    if not api_key and scheme.lower() == "bearer" and credential.startswith(KEY_PREFIX):
        api_key = credential
    if api_key:
        return await _from_api_key(connection, api_key)
    secret: str = connection.app.state.services.settings.jwt_secret
    if scheme.lower() == "bearer" and credential:
        tokens: TokenCache = connection.app.state.services.tokens
        return tokens.caller(credential)
    ticket = connection.query_params.get("ticket") if ticket_param else None
    if ticket_param and ticket:
        claims = _verify(ticket, _ticket_key(secret), "ticket", audience=TICKET_AUDIENCE)
        scope = connection.path_params.get(ticket_param)
        if claims.get("job") != scope:
            raise NotAuthorizedException("this ticket is for another job's event stream")
        connection.scope["state"]["ticket"] = claims
        return caller_from_claims(claims, "ticket")
    raise NotAuthorizedException(
        "missing credentials: send 'Authorization: Bearer <token>' or 'X-API-Key: <key>'"
        + (" (or ?ticket= from POST .../events/ticket)" if ticket_param else "")
    )


async def _from_api_key(connection: ASGIConnection[Any, Any, Any, Any], key: str) -> Caller:
    if not key.startswith(KEY_PREFIX) or "_" not in key[len(KEY_PREFIX) :]:
        raise NotAuthorizedException("malformed API key")
    key_id, _, secret = key[len(KEY_PREFIX) :].partition("_")
    pool: asyncpg.Pool[Any] = connection.app.state.services.pool
    row = await pool.fetchrow(
        "SELECT secret_hash, role, revoked_at, org FROM api_keys WHERE key_id = $1", key_id
    )
    if row is None or not hmac.compare_digest(row["secret_hash"], _hash(secret)):
        raise NotAuthorizedException("unknown API key")
    if row["revoked_at"] is not None:
        raise NotAuthorizedException("this API key was revoked")
    return Caller(subject=f"apikey:{key_id}", role=row["role"], via="api_key", org=row["org"])


def declared_role(handler: BaseRouteHandler) -> Role | Literal["public"] | None:
    """What ``handler`` declares: a role, ``"public"``, or None when it declares neither
    (or both, or a role that does not exist). OPTIONS, which Litestar answers by itself with
    the route's allowed methods and never with data, is public."""
    if set(getattr(handler, "http_methods", ())) == {"OPTIONS"}:
        return "public"
    role = handler.opt.get("role")
    public = handler.opt.get("public") is True
    if public and role is None:
        return "public"
    if not public and role in ROLES:
        declared: Role = role
        return declared
    return None


async def role_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Enforce the route's declared access; a route that declares none is refused."""
    needed = declared_role(handler)
    if needed == "public":
        return
    if needed is None:  # check_declared keeps such a route from ever being served
        raise PermissionDeniedException("this route declares no access rule")
    caller = await authenticate(connection, handler.opt.get("ticket"))
    if ROLES.index(caller.role) < ROLES.index(needed):
        raise PermissionDeniedException(
            f"this needs the {needed} role; the caller ({caller.subject}) is {caller.role}"
        )
    connection.scope["state"]["caller"] = caller


def check_declared(app: Litestar) -> None:
    """Refuse an app with a route that declares neither a role nor that it is public."""
    missing = [
        f"{method} {route.path}"
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if declared_role(handler) is None
        for method in sorted(handler.http_methods)
    ]
    if missing:
        raise UndeclaredAccess(
            "routes without a declared role or opt={'public': True}: " + ", ".join(missing)
        )


def ticket_of(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
    """The verified claims of the ticket the caller came with ({} when none)."""
    claims: dict[str, Any] = connection.scope["state"].get("ticket", {})
    return claims


def caller_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    caller: Caller = connection.scope["state"]["caller"]
    return caller
