"""Datasets, with how many scenes each has."""

from __future__ import annotations

from datetime import datetime

import msgspec

from modomo.read.sql import Conn, columns_of, in_org, select_list


class DatasetOut(msgspec.Struct, kw_only=True, gc=False):
    dataset_id: str
    name: str
    description: str
    created_by: str
    created_at: datetime
    scene_count: int = 0


class DatasetPage(msgspec.Struct, kw_only=True, gc=False):
    items: list[DatasetOut]
    next_cursor: str | None


_SELECT = "SELECT " + select_list(
    columns_of(
        DatasetOut.__struct_fields__,
        "d",
        scene_count="(SELECT count(*) FROM scenes s WHERE s.dataset_id = d.dataset_id)",
    )
)


async def dataset(conn: Conn, dataset_id: str) -> DatasetOut | None:
    row = await conn.fetchrow(
        f"{_SELECT} FROM datasets d WHERE d.dataset_id = $1 AND {in_org('d')}", dataset_id
    )
    return None if row is None else DatasetOut(**dict(row))


async def dataset_exists(conn: Conn, dataset_id: str) -> bool:
    return bool(
        await conn.fetchval(
            f"SELECT 1 FROM datasets d WHERE d.dataset_id = $1 AND {in_org('d')}", dataset_id
        )
    )


async def datasets(
    conn: Conn, *, before: tuple[datetime, str] | None, limit: int
) -> list[DatasetOut]:
    """Up to ``limit`` datasets, newest first, created before ``before`` (time, id)."""
    where, args = f"WHERE {in_org('d')}", []
    if before is not None:
        where += " AND (d.created_at, d.dataset_id) < ($2, $3)"
        args = [before[0], before[1]]
    rows = await conn.fetch(
        f"{_SELECT} FROM datasets d {where} ORDER BY d.created_at DESC, d.dataset_id DESC LIMIT $1",
        limit,
        *args,
    )
    return [DatasetOut(**dict(r)) for r in rows]
