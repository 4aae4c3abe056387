"""Connections to PostgreSQL (Supabase in production) for the read models.

Two kinds of connection:

- ``connect(settings)``: the search path is set for the session (handy for one-off
  commands and tests). A transaction-mode pooler would not keep that setting.
- ``connect(settings, pooled=True)``: nothing is kept in the session, so it works through
  a transaction-mode pooler (pgbouncer ``pool_mode = transaction``, Supabase port 6543):
  no prepared-statement cache, no session search path, no session locks or temporary
  tables. Every statement runs inside :func:`transaction`, which sets the search path
  for that transaction alone. The projectors, ``migrate`` and ``replay`` use these.

Every connection has a connect timeout and a per-statement timeout from the settings.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec

from modomo.settings import Settings

_json_encode = msgspec.json.encode
_json_decode = msgspec.json.decode

_search_paths: weakref.WeakKeyDictionary[asyncpg.Connection[Any], str] = weakref.WeakKeyDictionary()
"""The search path each connection's transactions set (asyncpg connections have slots)."""


def quote(identifier: str) -> str:
    """A schema or table name as a quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def search_path(settings: Settings, read_schema: str | None = None) -> str:
    """The read-model schema, then the log schema, as SQL."""
    return f"{quote(read_schema or settings.db_schema)}, {quote(settings.db_log_schema)}"


async def _init(conn: asyncpg.Connection[Any]) -> None:
    # Binary jsonb (a version byte, then JSON) lets COPY carry jsonb columns.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        format="binary",
        encoder=lambda value: b"\x01" + _json_encode(value),
        decoder=lambda data: _json_decode(data[1:]),
    )


def _server_settings(settings: Settings, read_schema: str) -> dict[str, str]:
    # The pid in the application name tells, in pg_stat_activity, which process is which.
    return {
        "search_path": search_path(settings, read_schema),
        "application_name": f"modomo:{os.getpid()}",
    }


async def connect(
    settings: Settings, schema: str | None = None, *, pooled: bool = False
) -> asyncpg.Connection[Any]:
    """A connection whose unqualified names resolve to ``schema`` (the read models by
    default), then the log schema. ``sslmode`` and credentials come from the URL.

    With ``pooled``, the names resolve that way only inside :func:`transaction`.
    """
    path = search_path(settings, schema)
    if pooled:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(
            settings.database_url,
            statement_cache_size=0,
            timeout=settings.db_connect_timeout_s,
            command_timeout=settings.db_command_timeout_s,
            server_settings={"application_name": f"modomo:{os.getpid()}"},
        )
    else:
        conn = await asyncpg.connect(
            settings.database_url,
            statement_cache_size=settings.db_statement_cache_size,
            timeout=settings.db_connect_timeout_s,
            command_timeout=settings.db_command_timeout_s,
            server_settings=_server_settings(settings, schema or settings.db_schema),
        )
    try:
        # In a transaction: through a transaction-mode pooler the codec's type lookup must
        # not be split across two server connections.
        async with conn.transaction():
            await _init(conn)
    except BaseException:
        conn.terminate()
        raise
    _search_paths[conn] = path
    return conn


@asynccontextmanager
async def transaction(conn: asyncpg.Connection[Any]) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A transaction on a connection from :func:`connect`, with its search path set."""
    async with conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {_search_paths[conn]}")
        yield conn


async def pool(settings: Settings, **options: Any) -> asyncpg.Pool[Any]:
    """A pool of session connections, for the API's reads."""
    created: asyncpg.Pool[Any] = await asyncpg.create_pool(
        settings.database_url,
        statement_cache_size=settings.db_statement_cache_size,
        timeout=settings.db_connect_timeout_s,
        command_timeout=settings.db_command_timeout_s,
        server_settings=_server_settings(settings, settings.db_schema),
        init=_init,
        **options,
    )
    return created
