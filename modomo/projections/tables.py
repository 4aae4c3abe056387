"""Bulk writes shared by the projectors: COPY into a temporary table, then one upsert.

The temporary tables live for one transaction (``ON COMMIT DROP``), never for a session:
through a transaction-mode pooler the next transaction may run on another server
connection, where a session's temporary table does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg


async def columns(conn: asyncpg.Connection[Any], table: str) -> list[str]:
    """The table's columns in order (as the search path resolves it)."""
    rows = await conn.fetch(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = $1::regclass "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        table,
    )
    return [r["attname"] for r in rows]


async def stage(
    conn: asyncpg.Connection[Any],
    table: str,
    cols: Sequence[str],
    records: list[tuple[Any, ...]],
) -> str:
    """COPY ``records`` into ``_<table>``, a temporary twin of ``table`` made on first use
    in this transaction and dropped at its end; returns the staging table's name. The
    caller empties it (``DELETE``) once it has used the rows."""
    staging = f"_{table}"
    await conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table} INCLUDING DEFAULTS) "
        "ON COMMIT DROP"
    )
    await conn.copy_records_to_table(staging, records=records, columns=list(cols))
    return staging


async def upsert(
    conn: asyncpg.Connection[Any],
    table: str,
    key: Sequence[str],
    cols: Sequence[str],
    records: Iterable[tuple[Any, ...]],
) -> None:
    """Insert or replace ``records`` (tuples in ``cols`` order) by ``key``."""
    records = list(records)
    if not records:
        return
    staging = await stage(conn, table, cols, records)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in key)
    await conn.execute(
        f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM {staging} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )
    # DELETE, not TRUNCATE: a few rows in a temporary table, and no file to recreate.
    await conn.execute(f"DELETE FROM {staging}")


async def replace_children(
    conn: asyncpg.Connection[Any],
    table: str,
    parent: str,
    parents: Sequence[str],
    cols: Sequence[str],
    records: Iterable[tuple[Any, ...]],
) -> None:
    """Delete every row of ``parents`` from ``table`` and insert ``records`` instead."""
    if parents:
        await conn.execute(f"DELETE FROM {table} WHERE {parent} = ANY($1::text[])", list(parents))
    records = list(records)
    if records:
        await conn.copy_records_to_table(table, records=records, columns=list(cols))
