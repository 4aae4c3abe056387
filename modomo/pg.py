"""Connections to PostgreSQL (Supabase in production): one set of connection settings and
codecs for the projectors (which write the read models) and the API (which reads them)."""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import msgspec

from modomo.settings import Settings

_json_encode = msgspec.json.encode
_json_decode = msgspec.json.decode


def quote(identifier: str) -> str:
    """A schema or table name as a quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


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
    # The pid in the application name tells, in pg_stat_activity, which process holds
    # which projector's lease.
    return {
        "search_path": f"{quote(read_schema)}, {quote(settings.db_log_schema)}",
        "application_name": f"modomo:{os.getpid()}",
    }


async def connect(settings: Settings, schema: str | None = None) -> asyncpg.Connection[Any]:
    """A connection whose unqualified names resolve to ``schema`` (the read models by
    default), then the log schema. ``sslmode`` and credentials come from the URL.
    """
    conn: asyncpg.Connection[Any] = await asyncpg.connect(
        settings.database_url,
        statement_cache_size=settings.db_statement_cache_size,
        server_settings=_server_settings(settings, schema or settings.db_schema),
    )
    await _init(conn)
    return conn


async def keep_session(conn: asyncpg.Connection[Any]) -> None:
    """A pool ``reset`` that runs no query: for a pool whose users change no session state
    (no SET, LISTEN, advisory locks or cursors), like the API's reads. asyncpg's default
    runs a reset query on every release, a second round trip for every one-query read;
    an open transaction is still rolled back either way."""


async def pool(settings: Settings, **options: Any) -> asyncpg.Pool[Any]:
    """A pool of such connections, for the API's reads."""
    created: asyncpg.Pool[Any] = await asyncpg.create_pool(
        settings.database_url,
        statement_cache_size=settings.db_statement_cache_size,
        server_settings=_server_settings(settings, settings.db_schema),
        init=_init,
        **options,
    )
    return created
