"""Numbered plain-SQL migrations from ``migrations/``.

Each file starts with ``-- schema: read`` (read models, created in ``MODOMO_DB_SCHEMA`` and
again in every shadow schema a replay builds) or ``-- schema: log`` (the event archive, in
``MODOMO_DB_LOG_SCHEMA``). Files apply in number order, each in its own transaction, and
are recorded with a checksum: a second run is a no-op, and a file edited after it was
applied is refused, since the databases it already ran on would silently differ from new
ones. Nothing here needs a superuser, so it runs on Supabase as is.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import asyncpg

from modomo.projections.db import quote

MIGRATIONS_DIR = Path(
    os.environ.get("MODOMO_MIGRATIONS_DIR", Path(__file__).resolve().parents[2] / "migrations")
)
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_HEADER = re.compile(r"^--\s*schema:\s*(read|log)\s*$", re.MULTILINE)
_LOCK = 0x6D6F646F6D6F  # "modomo": one migrator at a time per database (per transaction)


class MigrationError(RuntimeError):
    """A migration cannot be applied; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    kind: Literal["read", "log"]
    sql: str
    checksum: str


def load(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file, in number order; refuses duplicate numbers and bad headers.

    Numbers may leave gaps: ranges of them are handed to parallel streams of work, so two
    branches never pick the same number. A database applies whatever it has not applied
    yet, in number order, so a lower number merged later still runs.
    """
    if not folder.is_dir():
        raise MigrationError(f"no migrations folder at {folder}")
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_words.sql")
        sql = path.read_text()
        header = _HEADER.search(sql.split("\n", 1)[0])
        if not header:
            raise MigrationError(f"{path.name}: first line must be '-- schema: read' or 'log'")
        found.append(
            Migration(
                number=int(match.group(1)),
                name=path.name,
                kind=header.group(1),  # type: ignore[arg-type]
                sql=sql,
                checksum=hashlib.sha256(sql.encode()).hexdigest(),
            )
        )
    numbers = [m.number for m in found]
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice or 0 in numbers:
        raise MigrationError(
            f"migration numbers must be unique and from 1, found {numbers} "
            f"(repeated: {twice or 'none'})"
        )
    return found


async def migrate(
    conn: asyncpg.Connection[Any],
    read_schema: str,
    log_schema: str,
    migrations: Sequence[Migration] | None = None,
) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date).

    Each file applies in its own transaction, which first takes a transaction-scoped
    advisory lock and then checks whether the file is still pending: two migrators never
    apply the same file, and nothing outlives a transaction, so this works through a
    transaction-mode pooler too.
    """
    migrations = load() if migrations is None else migrations
    log = quote(log_schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {log}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {log}.schema_migrations (
                    target      text        NOT NULL,
                    name        text        NOT NULL,
                    checksum    text        NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (target, name))"""
        )
    done: list[str] = []
    for migration in migrations:
        target = read_schema if migration.kind == "read" else log_schema
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            record = await conn.fetchrow(
                f"SELECT checksum, applied_at FROM {log}.schema_migrations "
                "WHERE target = $1 AND name = $2",
                target,
                migration.name,
            )
            if record is not None:
                if record["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{migration.name} was applied to schema {target} on "
                        f"{record['applied_at']:%Y-%m-%d %H:%M} and has been edited since; "
                        "restore it and put the change in a new numbered migration"
                    )
                continue
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(target)}")
            await conn.execute(f"SET LOCAL search_path TO {quote(target)}")
            try:
                await conn.execute(migration.sql)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"{migration.name} failed: {exc}") from exc
            await conn.execute(
                f"INSERT INTO {log}.schema_migrations (target, name, checksum) VALUES ($1, $2, $3)",
                target,
                migration.name,
                migration.checksum,
            )
        done.append(migration.name)
    return done


async def create_read_schema(
    conn: asyncpg.Connection[Any], schema: str, migrations: Sequence[Migration] | None = None
) -> None:
    """Create ``schema`` afresh with every read-model migration, unrecorded (a replay's
    shadow or point-in-time copy)."""
    migrations = load() if migrations is None else migrations
    async with conn.transaction():
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE")
        await conn.execute(f"CREATE SCHEMA {quote(schema)}")
        await conn.execute(f"SET LOCAL search_path TO {quote(schema)}")
        for migration in migrations:
            if migration.kind == "read":
                await conn.execute(migration.sql)
