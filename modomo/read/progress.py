"""How far each projector has applied the log: what read-your-writes waits on."""

from __future__ import annotations

from modomo.read.sql import Conn


async def position(conn: Conn, projector: str) -> str | None:
    """The last log entry id ``projector`` has applied (None before its first batch)."""
    found: str | None = await conn.fetchval(
        "SELECT position FROM projector_checkpoints WHERE name = $1", projector
    )
    return found
