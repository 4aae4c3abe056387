"""``modomo migrate`` against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from modomo.projections.migrate import MIGRATIONS_DIR, MigrationError, load, migrate
from tests.integration.conftest import DATABASE_URL
from tests.integration.support import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
async def schemas() -> AsyncIterator[tuple[asyncpg.Connection[Any], str, str]]:
    name = f"m{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(DATABASE_URL)
    yield conn, f"{name}_rm", f"{name}_log"
    for schema in (f"{name}_rm", f"{name}_log"):
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.close()


async def test_migrations_apply_once_then_are_a_no_op(
    schemas: tuple[asyncpg.Connection[Any], str, str],
) -> None:
    conn, read, log = schemas
    applied = await migrate(conn, read, log)
    assert applied == [m.name for m in load()]
    assert await migrate(conn, read, log) == []
    tables = {
        r["table_name"]
        for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", read
        )
    }
    assert {
        "datasets",
        "jobs",
        "job_scenes",
        "scenes",
        "scene_styles",
        "objects",
        "object_materials",
        "reviews",
        "projector_checkpoints",
        "parked_events",
    } <= tables
    indexes = {
        r["indexname"]
        for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1", read)
    }
    assert {
        "scenes_scene_type",
        "scene_styles_style_code",
        "object_materials_material_code",
        "objects_category_code",
        "objects_confidence",
        "objects_attrs",
        "scenes_palette",
    } <= indexes
    gin = await conn.fetch(
        "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND indexdef LIKE '%USING gin%'",
        read,
    )
    assert {r["indexname"] for r in gin} == {"objects_attrs", "scenes_palette"}
    assert await conn.fetchval(f'SELECT count(*) FROM "{log}".event_log') == 0


async def test_an_edited_applied_migration_is_refused(
    schemas: tuple[asyncpg.Connection[Any], str, str], tmp_path: Path
) -> None:
    conn, read, log = schemas
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    await migrate(conn, read, log, load(folder))
    edited = folder / "0002_read_models.sql"
    edited.write_text(edited.read_text() + "\nCREATE INDEX reviews_note ON reviews (note);\n")
    with pytest.raises(MigrationError, match=r"0002_read_models\.sql was applied .* edited since"):
        await migrate(conn, read, log, load(folder))
    indexes = await conn.fetch("SELECT 1 FROM pg_indexes WHERE indexname = 'reviews_note'")
    assert indexes == []

    env = {
        "MODOMO_DATABASE_URL": DATABASE_URL,
        "MODOMO_DB_SCHEMA": read,
        "MODOMO_DB_LOG_SCHEMA": log,
        "MODOMO_MIGRATIONS_DIR": str(folder),
        "PATH": "",
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "modomo.cli", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "migration refused" in result.stderr
    assert "0002_read_models.sql" in result.stderr


async def test_a_new_numbered_migration_applies_alone(
    schemas: tuple[asyncpg.Connection[Any], str, str], tmp_path: Path
) -> None:
    conn, read, log = schemas
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    await migrate(conn, read, log, load(folder))
    number = load(folder)[-1].number + 1
    (folder / f"{number:04d}_review_notes.sql").write_text(
        "-- schema: read\nCREATE INDEX reviews_note ON reviews (note);\n"
    )
    assert await migrate(conn, read, log, load(folder)) == [f"{number:04d}_review_notes.sql"]
    broken = folder / f"{number + 1:04d}_broken.sql"
    broken.write_text("-- schema: read\nCREATE TABLE datasets (x int);\n")
    with pytest.raises(MigrationError, match=r"_broken\.sql failed"):
        await migrate(conn, read, log, load(folder))
    assert await migrate(conn, read, log, load(folder)[:-1]) == []


def test_misnamed_or_headerless_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("-- schema: read\nSELECT 1;\n")
    (tmp_path / "0040_gap.sql").write_text("-- schema: read\nSELECT 1;\n")
    assert [m.number for m in load(tmp_path)] == [1, 40]  # ranges per stream of work
    (tmp_path / "0040_again.sql").write_text("-- schema: read\nSELECT 1;\n")
    with pytest.raises(MigrationError, match=r"repeated: \[40\]"):
        load(tmp_path)
    (tmp_path / "0040_gap.sql").unlink()
    (tmp_path / "0040_again.sql").unlink()
    (tmp_path / "0002_nohead.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match="first line"):
        load(tmp_path)
    (tmp_path / "0002_nohead.sql").unlink()
    (tmp_path / "2_bad name.sql").write_text("-- schema: read\n")
    with pytest.raises(MigrationError, match=r"NNNN_words\.sql"):
        load(tmp_path)
