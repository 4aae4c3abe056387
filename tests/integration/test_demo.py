"""End to end: ``modomo demo`` with real processes (API, projectors, a tiny-profile GPU
worker), the real Redis, PostgreSQL and S3 server, everything through HTTP."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modomo.demo.services import settings_env
from modomo.projections import db
from modomo.settings import Settings
from modomo.storage import Storage
from tests.integration.support import ROOT, stack_settings

pytestmark = pytest.mark.integration


async def test_demo_runs_the_whole_flow(
    db_settings: Settings, s3_endpoint: str, tmp_path: Path
) -> None:
    settings = stack_settings(
        db_settings,
        s3_endpoint,
        tmp_path,
        "d",
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "modomo.cli",
            "demo",
            "--scenes",
            "3",
            "--state",
            str(tmp_path / "state"),
        ],
        cwd=ROOT,
        env=settings_env(settings) | {"HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    logs = "".join(p.read_text()[-1500:] for p in (tmp_path / "state/logs").glob("*.log"))
    assert result.returncode == 0, result.stdout + result.stderr + logs
    assert "3 scenes in" in result.stdout
    assert "scenes   ok 3, partial 0, failed 0" in result.stdout
    assert "segment" in result.stdout
    # No terminal here: it ends after the summary by itself, and says how to keep it up.
    assert "stopping after the summary; --stay keeps everything running" in result.stderr
    link = re.search(r"review app +(http://\S+/app/datasets/\S+#token=\S+)", result.stdout)
    assert link, result.stdout
    assert "Warning" not in result.stdout + result.stderr  # no library warning at the user

    conn = await db.connect(settings)
    try:
        scenes = await conn.fetch(
            "SELECT scene_id, status, scene_type, depth_key, caption, "
            "palette, object_count FROM scenes"
        )
        objects = await conn.fetch(
            "SELECT object_id, scene_id, mask_key, thumb_key "
            "FROM objects WHERE mask_key IS NOT NULL"
        )
        job = await conn.fetchrow("SELECT status, ok, total FROM jobs")
    finally:
        await conn.close()
    assert len(scenes) == 3
    assert {r["status"] for r in scenes} == {"ok"}
    assert all(
        r["scene_type"]
        and r["depth_key"] == f"depth/{r['scene_id']}.png"
        and r["palette"]
        and 5 <= len(r["palette"]) <= 8
        for r in scenes
    )
    assert job is not None
    assert (job["status"], job["ok"], job["total"]) == ("succeeded", 3, 3)
    async with Storage.open(settings) as storage:
        for row in scenes:
            assert await storage.head(row["depth_key"]) is not None
        for row in objects[:10]:
            assert row["mask_key"] == f"masks/{row['scene_id']}/{row['object_id']}.png"
            assert await storage.head(row["mask_key"]) is not None
            assert await storage.head(row["thumb_key"]) is not None
