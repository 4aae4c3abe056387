"""The event archive (``event_log``), for what the API reads from it: a job's events once
its Redis stream has expired."""

from __future__ import annotations

from modomo.read.sql import Conn


async def job_archived(conn: Conn, job_id: str) -> bool:
    """Whether the archive holds any event of the job."""
    return bool(await conn.fetchval("SELECT 1 FROM event_log WHERE job_id = $1", job_id))


async def job_events_after(
    conn: Conn, job_id: str, after: tuple[int, int], limit: int
) -> list[tuple[str, bytes]]:
    """Up to ``limit`` of the job's archived events after log position ``after``, in log
    order: ``(entry id, payload)``."""
    rows = await conn.fetch(
        "SELECT ms, seq, payload FROM event_log WHERE job_id = $1 AND (ms, seq) > ($2, $3) "
        "ORDER BY ms, seq LIMIT $4",
        job_id,
        after[0],
        after[1],
        limit,
    )
    return [(f"{r['ms']}-{r['seq']}", bytes(r["payload"])) for r in rows]
