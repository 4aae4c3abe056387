"""Reviews: verdicts left on scenes and objects."""

from __future__ import annotations

from datetime import datetime

import msgspec

from modomo.read.sql import ORG, Conn


class ReviewOut(msgspec.Struct, kw_only=True, gc=False):
    review_id: str
    scene_id: str
    object_id: str | None
    verdict: str
    note: str
    reviewer: str
    created_at: datetime


_SELECT = f"SELECT {', '.join(ReviewOut.__struct_fields__)} FROM reviews"


async def review(conn: Conn, review_id: str) -> ReviewOut | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE review_id = $1 AND org_id = {ORG}", review_id)
    return None if row is None else ReviewOut(**dict(row))


async def reviews_of(conn: Conn, scene_id: str) -> list[ReviewOut]:
    """The scene's reviews, newest first."""
    rows = await conn.fetch(
        f"{_SELECT} WHERE scene_id = $1 AND org_id = {ORG} ORDER BY created_at DESC, review_id",
        scene_id,
    )
    return [ReviewOut(**dict(r)) for r in rows]
