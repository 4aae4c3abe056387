"""The API's database handle for one caller: every query in a transaction that names the
caller's organisation, and (when configured) as a role row-level security applies to.

Two walls keep one organisation's rows from another's caller. The query layer
(:mod:`modomo.read`) filters by ``org_id = current_setting('modomo.org', true)``, and the
read models' row-level security policies (migration 0060) compare the same column to the
same setting for every role but the tables' owner. With ``MODOMO_DB_API_ROLE`` set, each
transaction here also switches to that role (``SET LOCAL ROLE``), so the policies apply
even to a query that forgot its filter. Both settings are ``LOCAL`` to the transaction,
which is what keeps them correct through a transaction-mode pooler (Supabase port 6543):
nothing is left on a server connection for the next client to inherit.

One read costs three round trips instead of one (``BEGIN`` with the settings, the query,
``COMMIT``); against a local PostgreSQL that is well under a millisecond.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg

from modomo.domain.orgs import valid_org
from modomo.pg import quote

if TYPE_CHECKING:
    Pool = asyncpg.Pool[Any]
    Connection = asyncpg.pool.PoolConnectionProxy[Any]
else:
    Pool = asyncpg.Pool
    Connection = asyncpg.pool.PoolConnectionProxy


class OrgScope:
    """Runs queries on ``pool`` as the organisation ``org`` (and the role ``role``; with
    ``search_path``, also with that search path, for connections that keep none)."""

    __slots__ = ("_begin", "org", "pool", "role")

    def __init__(self, pool: Pool, org: str, role: str = "", search_path: str = "") -> None:
        # An id that is not well formed never reaches SQL: it scopes to nothing.
        if not valid_org(org):
            org = ""
        self.pool, self.org, self.role = pool, org, role
        # Literals, not parameters: BEGIN and the settings then go in one round trip (the
        # simple query protocol takes no parameters). The org id matches ORG_PATTERN and
        # the role is quoted as an identifier, so neither can carry SQL.
        setup = f"SELECT set_config('modomo.org', '{org}', true)"
        if role:
            setup = f"SET LOCAL ROLE {quote(role)}; {setup}"
        if search_path:  # made by modomo.pg.search_path: quoted identifiers
            setup = f"SET LOCAL search_path TO {search_path}; {setup}"
        self._begin = f"BEGIN READ ONLY; {setup}"

    async def _run(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        async with self.pool.acquire() as conn:
            await conn.execute(self._begin)
            try:
                result = await getattr(conn, method)(query, *args)
            except BaseException:
                if not conn.is_closed():
                    await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")
            return result

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        found: list[Any] = await self._run("fetch", query, args)
        return found

    async def fetchrow(self, query: str, *args: Any) -> Any:
        return await self._run("fetchrow", query, args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._run("fetchval", query, args)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        """A connection inside a transaction scoped like every query here (read-only; a
        nested ``transaction()`` on it is a savepoint)."""
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            setup = self._begin.removeprefix("BEGIN READ ONLY; ")
            await conn.execute(setup)
            yield conn
