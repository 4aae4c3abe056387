"""Helpers for the organisation tests: a database role row-level security applies to, logs
of two organisations, and a connection that strips the query layer's org filter."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from modomo.domain.events import EventBase
from modomo.settings import Settings

READER_ROLE = "modomo_reader_test"
"""Not the tables' owner, no BYPASSRLS, no login: what a deployment's API role is."""

RLS_TABLES = (
    "datasets",
    "scenes",
    "scene_styles",
    "objects",
    "object_materials",
    "reviews",
    "jobs",
    "job_scenes",
    "exports",
    "evaluations",
    "embeddings",
    "embedding_scene_orgs",
)
"""Every read model that holds an organisation's rows (migration 0060)."""


async def grant_reader(settings: Settings) -> str:
    """Make :data:`READER_ROLE` (once per cluster) and let it read the test's schemas."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        # Roles are cluster-wide: an earlier test (or a parallel one) may have made it.
        with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            await conn.execute(f"CREATE ROLE {READER_ROLE} NOLOGIN NOBYPASSRLS")
        flags = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", READER_ROLE
        )
        assert flags is not None
        assert not flags["rolsuper"]
        assert not flags["rolbypassrls"]
        for schema in (settings.db_schema, settings.db_log_schema):
            await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {READER_ROLE}')
            await conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {READER_ROLE}')
    finally:
        await conn.close()
    return READER_ROLE


def in_org(events: Sequence[EventBase], org: str) -> list[EventBase]:
    """``events`` with every ``org`` field set to ``org`` (the others as they are)."""
    return [
        msgspec.structs.replace(e, org=org) if "org" in e.__struct_fields__ else e  # type: ignore[type-var]
        for e in events
    ]


_FILTER = re.compile(r"(?:\b\w+\.)?org_id = current_setting\('modomo\.org', true\)")


class Unfiltered:
    """A connection whose queries lose the query layer's organisation filter: what a query
    that forgot it would run. Counts what it removed, so a test can tell it removed some."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.removed = 0

    def _strip(self, query: str) -> str:
        stripped, count = _FILTER.subn("true", query)
        self.removed += count
        return stripped

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        found: list[Any] = await self.conn.fetch(self._strip(query), *args)
        return found

    async def fetchrow(self, query: str, *args: Any) -> Any:
        return await self.conn.fetchrow(self._strip(query), *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.conn.fetchval(self._strip(query), *args)
