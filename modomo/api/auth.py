"""Who is calling: JWT bearer tokens (HS256) for people, API keys for integrations.

Roles are ordered: viewer < reviewer < admin. A route declares the least role it needs in
``opt={"role": ...}``; :mod:`modomo.api.observe` enforces it. No credentials: 401; a role
too low: 403; both with a JSON body saying why.
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
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException

Role = Literal["viewer", "reviewer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "reviewer", "admin")
KEY_PREFIX = "mdk_"
_REQUIRED = ["exp", "sub", "role"]


@dataclass(frozen=True, slots=True)
class Caller:
    subject: str
    role: Role
    via: Literal["jwt", "api_key"]


def issue_token(secret: str, subject: str, role: Role, ttl_s: int = 3600) -> str:
    """A signed bearer token (what the auth service of a deployment would hand out)."""
    now = int(time.time())
    return jwt.encode(
        {"sub": subject, "role": role, "iat": now, "exp": now + ttl_s}, secret, algorithm="HS256"
    )


def new_api_key() -> tuple[str, str, str]:
    """(key id, full key to show once, hash of its secret to store)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}", _hash(secret)


def _hash(secret: str) -> str:
    # The secret is 256 random bits, so a plain digest is as strong as a slow KDF here.
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(conn: asyncpg.Connection[Any], role: Role, name: str = "") -> str:
    key_id, full, digest = new_api_key()
    await conn.execute(
        "INSERT INTO api_keys (key_id, secret_hash, role, name) VALUES ($1, $2, $3, $4)",
        key_id,
        digest,
        role,
        name,
    )
    return full


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
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                options={"require": ["exp", "sub", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise NotAuthorizedException("the bearer token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise NotAuthorizedException(f"invalid bearer token: {exc}") from None
        role = claims.get("role")
        if role not in ROLES:
            raise NotAuthorizedException(f"the token's role {role!r} is not one of {ROLES}")
        caller = Caller(subject=str(claims["sub"]), role=role, via="jwt")
        if len(self._known) >= self.max_tokens:
            self._known.clear()
        self._known[token] = (caller, float(claims["exp"]))
        return caller


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    header = connection.headers.get("authorization", "")
    api_key = connection.headers.get("x-api-key", "")
    scheme, _, credential = header.partition(" ")
    if not api_key and scheme.lower() == "bearer" and credential.startswith(KEY_PREFIX):
        api_key = credential
    if api_key:
        return await _from_api_key(connection, api_key)
    if scheme.lower() != "bearer" or not credential:
        raise NotAuthorizedException(
            "missing credentials: send 'Authorization: Bearer <token>' or 'X-API-Key: <key>'"
        )
    tokens: TokenCache = connection.app.state.services.tokens
    return tokens.caller(credential)


async def _from_api_key(connection: ASGIConnection[Any, Any, Any, Any], key: str) -> Caller:
    if not key.startswith(KEY_PREFIX) or "_" not in key[len(KEY_PREFIX) :]:
        raise NotAuthorizedException("malformed API key")
    key_id, _, secret = key[len(KEY_PREFIX) :].partition("_")
    pool: asyncpg.Pool[Any] = connection.app.state.services.db
    row = await pool.fetchrow(
        "SELECT secret_hash, role, revoked_at FROM api_keys WHERE key_id = $1", key_id
    )
    if row is None or not hmac.compare_digest(row["secret_hash"], _hash(secret)):
        raise NotAuthorizedException("unknown API key")
    if row["revoked_at"] is not None:
        raise NotAuthorizedException("this API key was revoked")
    return Caller(subject=f"apikey:{key_id}", role=row["role"], via="api_key")


def caller_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    caller: Caller = connection.scope["state"]["caller"]
    return caller
