"""One active instance per projector: a lease row with an expiry.

A session advisory lock would end with its connection, which is what made takeover quick;
but through a transaction-mode pooler the session is not ours, so the lease is a row in
``<log schema>.projector_leases`` instead, and every check happens inside a transaction:

- :meth:`Lease.acquire` takes the row when it is free, expired, or already ours.
- :meth:`Lease.renew` runs inside each batch's transaction: it extends the expiry only
  while the row still names this holder, and raises :class:`LeaseLost` otherwise, so a
  batch of an instance that lost its lease (paused past the expiry, cut off) rolls back
  instead of writing beside the new holder. The row lock it takes also orders a batch
  against a competing acquire.
- :meth:`Lease.release` frees the row at a clean stop, so a standby takes over at once;
  after a crash it takes over once the lease expires (``MODOMO_PROJECTOR_LEASE_MS``).

Times are the database's own (``now()``), so clocks of different hosts never matter.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import asyncpg

from modomo.projections.db import quote


class LeaseLost(RuntimeError):
    """Another instance holds the projector's lease now."""


def holder_name() -> str:
    """This instance: host, pid and a random part (two runners may share a process)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """The lease of one projector in one read schema."""

    def __init__(self, log_schema: str, name: str, ttl_ms: int, holder: str | None = None):
        self.table = f"{quote(log_schema)}.projector_leases"
        self.name = name
        self.ttl_ms = ttl_ms
        self.holder = holder or holder_name()

    async def acquire(self, conn: asyncpg.Connection[Any]) -> bool:
        """Take the lease if it is free, expired or ours (inside the caller's transaction)."""
        row = await conn.fetchrow(
            f"INSERT INTO {self.table} AS l (name, holder, acquired_at, expires_at)"
            " VALUES ($1, $2, now(), now() + make_interval(secs => $3 / 1000.0))"
            " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,"
            " acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at"
            " ELSE now() END, expires_at = EXCLUDED.expires_at"
            " WHERE l.holder = EXCLUDED.holder OR l.expires_at < now()"
            " RETURNING holder",
            self.name,
            self.holder,
            self.ttl_ms,
        )
        return row is not None

    async def renew(self, conn: asyncpg.Connection[Any]) -> None:
        """Extend the lease (inside the caller's transaction); :class:`LeaseLost` when
        another instance holds it now."""
        status = await conn.execute(
            f"UPDATE {self.table} SET expires_at = now() + make_interval(secs => $3 / 1000.0)"
            " WHERE name = $1 AND holder = $2",
            self.name,
            self.holder,
            self.ttl_ms,
        )
        if status.endswith(" 0"):
            raise LeaseLost(f"the lease of {self.name} passed to another instance")

    async def release(self, conn: asyncpg.Connection[Any]) -> None:
        """Give the lease up, if this instance still holds it (inside a transaction)."""
        await conn.execute(
            f"DELETE FROM {self.table} WHERE name = $1 AND holder = $2", self.name, self.holder
        )

    async def holder_now(self, conn: asyncpg.Connection[Any]) -> str | None:
        """Who holds the unexpired lease, if anyone."""
        value: str | None = await conn.fetchval(
            f"SELECT holder FROM {self.table} WHERE name = $1 AND expires_at > now()",
            self.name,
        )
        return value
