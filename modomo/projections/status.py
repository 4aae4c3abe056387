"""Where each projector stands: position, lag, parked entries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.asyncio import Redis

from modomo.projections import db
from modomo.projections.projector import parse_id
from modomo.projections.registry import PROJECTORS
from modomo.projections.source import entries_added


@dataclass(frozen=True, slots=True)
class ProjectorStatus:
    name: str
    position: str
    events_seen: int
    lag: int | None
    parked: int


async def statuses(
    conn: asyncpg.Connection[Any], redis: Redis, stream: str
) -> list[ProjectorStatus]:
    added = await entries_added(redis, stream)
    async with db.transaction(conn):
        rows = {
            r["name"]: r
            for r in await conn.fetch(
                "SELECT name, position, events_seen FROM projector_checkpoints "
                "UNION ALL SELECT name, position, events_seen FROM log_checkpoints"
            )
        }
        parked = {
            r["projector"]: r["n"]
            for r in await conn.fetch(
                "SELECT projector, count(*) AS n FROM parked_events WHERE resolved_at IS NULL"
                " GROUP BY projector"
            )
        }
    out = []
    for name in PROJECTORS:
        row = rows.get(name)
        seen = int(row["events_seen"]) if row else 0
        out.append(
            ProjectorStatus(
                name=name,
                position=row["position"] if row else "0-0",
                events_seen=seen,
                lag=max(added - seen, 0) if added is not None else None,
                parked=int(parked.get(name, 0)),
            )
        )
    return out


async def trim_log(
    conn: asyncpg.Connection[Any], redis: Redis, stream: str, margin: int = 0
) -> int:
    """Trim the Redis log below the slowest projector's checkpoint (the archive included,
    so everything trimmed is in ``event_log``), keeping ``margin`` more entries below it;
    returns how many entries went. Nothing goes while some projector has not started."""
    async with db.transaction(conn):
        rows = await conn.fetch(
            "SELECT position FROM projector_checkpoints "
            "UNION ALL SELECT position FROM log_checkpoints"
        )
    positions = {r["position"] for r in rows}
    if len(rows) < len(PROJECTORS) or "0-0" in positions:
        return 0  # some projector has not started: it still needs the whole log
    lowest = min(positions, key=parse_id)
    if margin == 0:
        # MINID keeps entries >= the id; the checkpoint entry itself is already applied.
        ms, seq = parse_id(lowest)
        keep_from = f"{ms}-{seq + 1}"
    else:
        # The entry ``margin`` places below the checkpoint is the oldest one kept.
        below: Any = await redis.xrevrange(stream, max=lowest, count=margin + 1)
        if len(below) <= margin:
            return 0
        keep_from = below[-1][0].decode() if isinstance(below[-1][0], bytes) else below[-1][0]
    return int(await redis.xtrim(stream, minid=keep_from, approximate=False))
