"""``modomo eval`` against the real services: a job whose results are the painted truth
scores perfectly; a later, worse job on the same golden set is flagged as a regression."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from redis.asyncio import Redis

from modomo.domain.events import EvaluationRecorded, JobCreated
from modomo.evaluate.run import evaluate, load_golden
from modomo.projections import db
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.streams.keys import Keys
from modomo.synthetic.golden import golden_document
from tests.integration.products_support import (
    Painted,
    bucket,
    painted_dataset,
    scene_events,
    with_bucket,
)
from tests.integration.projection_support import project, publish
from tests.integration.support import ROOT, log_events, settings_env

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(
    db_settings: Settings, redis: Redis, s3_endpoint: str, tmp_path: Path
) -> AsyncIterator[tuple[Settings, Storage, Painted, Path]]:
    settings = with_bucket(db_settings, s3_endpoint)
    async with bucket(settings) as storage:
        painted = await painted_dataset(redis, settings, storage, scenes=4)
        rooms = [(f"room-{i:03d}.jpg", painted.rooms[s]) for i, s in enumerate(painted.scene_ids)]
        golden = tmp_path / "ground_truth.json"
        golden.write_bytes(msgspec.json.encode(golden_document(rooms, "four painted rooms")))
        yield settings, storage, painted, golden


async def test_perfect_results_score_one_and_a_worse_job_is_flagged(
    redis: Redis, world: tuple[Settings, Storage, Painted, Path]
) -> None:
    settings, storage, painted, golden_path = world
    golden = load_golden(golden_path)
    conn = await db.connect(settings)
    try:
        first = await evaluate(
            conn, redis, Keys(settings.redis_prefix).events, storage, golden, painted.job_id
        )
    finally:
        await conn.close()
    assert (first.scenes, first.missing, first.previous_id) == (4, 0, "")
    for name in ("bbox_map", "bbox_map50", "mask_map", "mask_map50"):
        assert first.metrics[name] == pytest.approx(1.0), name
    for name in ("scene_type_f1", "style_f1", "material_f1", "caption_truth_recall"):
        assert first.metrics[name] == pytest.approx(1.0), name
    assert first.metrics["palette_de00"] < 3.0  # the 8 largest of the painted colours
    assert first.models["detect"] == "truth"
    assert set(first.per_class["bbox_ap"]) == {
        o.category for r in painted.rooms.values() for o in r.objects
    }
    last = await publish(redis, settings, [first])
    await project(redis, settings, last, ["evaluations"])

    # A second job on the same scenes calls every object a lamp.
    job = str(uuid.uuid4())
    worse = [
        JobCreated(job_id=job, dataset_id=painted.dataset_id, scene_ids=tuple(painted.scene_ids))
    ]
    for scene_id in painted.scene_ids:
        room = painted.rooms[scene_id]
        lamps = dataclasses.replace(
            room, objects=tuple(dataclasses.replace(o, category="lamp") for o in room.objects)
        )
        worse += scene_events(job, scene_id, lamps, painted.objects[scene_id])
    await publish(redis, settings, worse)

    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "modomo.cli",
            "eval",
            "--golden",
            str(golden_path),
            "--job",
            job,
            "--fail-on-regression",
        ],
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1, result.stderr
    assert "REGRESSED" in result.stdout
    assert f"changes are against evaluation {first.evaluation_id}" in result.stdout
    recorded = [e for e in await log_events(redis, settings) if isinstance(e, EvaluationRecorded)]
    assert len(recorded) == 2
    second = recorded[-1]
    assert second.previous_id == first.evaluation_id
    assert second.metrics["bbox_map"] == 0.0
    assert second.deltas["bbox_map"] == pytest.approx(-1.0)
    assert "bbox_map" in second.regressions
    assert "scene_type_f1" not in second.regressions  # scene types were still right


def test_eval_refuses_what_it_cannot_read(db_settings: Settings, tmp_path: Path) -> None:
    env = settings_env(db_settings)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"images": "no"}))

    def run(golden: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modomo.cli", "eval", "--golden", str(golden), "--job", "j"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    missing = run(tmp_path / "nowhere.json")
    assert missing.returncode == 2
    assert "cannot read the golden set" in missing.stderr
    bad = run(broken)
    assert bad.returncode == 2
    assert "no 'images' list" in bad.stderr
    broken.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    empty = run(broken)
    assert empty.returncode == 1
    assert "the log is empty" in empty.stderr
