"""Exports read back by the real readers: pycocotools, ultralytics, pyarrow.

The dataset's results are the painted truth of synthetic rooms, with originals and masks in
a real S3 server (SeaweedFS), so every mask an export carries is compared with the mask
that was stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Redis

from modomo.domain.events import ObjectCorrected, ReviewSubmitted
from modomo.domain.events import new_id as fresh_id
from modomo.export.coco import decode_rle
from modomo.export.pack import ExportError
from modomo.export.run import export_dataset
from modomo.export.source import PositionError
from modomo.projections import db
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.streams.keys import Keys
from tests.integration.products_support import (
    Painted,
    bucket,
    painted_dataset,
    with_bucket,
)
from tests.integration.projection_support import project, publish
from tests.integration.support import ROOT, settings_env

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(
    db_settings: Settings, redis: Redis, s3_endpoint: str
) -> AsyncIterator[tuple[Settings, Storage, Painted]]:
    settings = with_bucket(db_settings, s3_endpoint)
    async with bucket(settings) as storage:
        painted = await painted_dataset(redis, settings, storage, scenes=3)
        await project(redis, settings, painted.last, ["archive"])
        yield settings, storage, painted


async def _export(
    redis: Redis,
    settings: Settings,
    storage: Storage,
    dataset_id: str,
    fmt: Any,
    as_of: str = "",
    reviewed_only: bool = False,
) -> tuple[str, bytes]:
    conn = await db.connect(settings)
    try:
        position, built = await export_dataset(
            conn,
            redis,
            Keys(settings.redis_prefix).events,
            storage,
            dataset_id=dataset_id,
            fmt=fmt,
            as_of=as_of,
            reviewed_only=reviewed_only,
        )
    finally:
        await conn.close()
    return position, built.data


def _files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


async def test_coco_export_loads_in_pycocotools_and_its_masks_are_the_stored_ones(
    redis: Redis, world: tuple[Settings, Storage, Painted], tmp_path: Path
) -> None:
    from pycocotools.coco import COCO

    settings, storage, painted = world
    position, data = await _export(redis, settings, storage, painted.dataset_id, "coco")
    assert position == painted.last
    files = _files(data)
    manifest = json.loads(files["manifest.json"])
    assert (manifest["position"], manifest["format"], manifest["scenes"]) == (position, "coco", 3)
    for entry in manifest["files"]:
        assert hashlib.sha256(files[entry["path"]]).hexdigest() == entry["sha256"]
    (tmp_path / "instances.json").write_bytes(files["annotations/instances.json"])
    coco = COCO(str(tmp_path / "instances.json"))
    assert len(coco.getImgIds()) == 3
    compared = 0
    for image in coco.loadImgs(coco.getImgIds()):
        scene_id = image["modomo"]["scene_id"]
        room = painted.rooms[scene_id]
        assert (image["width"], image["height"]) == (room.width, room.height)
        assert files[f"images/{image['file_name']}"] == room.jpeg
        assert image["modomo"]["scene_type"] == room.scene_type
        assert image["modomo"]["caption"] == room.caption
        assert [c["hex"] for c in image["modomo"]["palette"]] == [h for h, _ in room.palette[:8]]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        by_id = {a["modomo"]["object_id"]: a for a in anns}
        assert set(by_id) == set(painted.objects[scene_id])
        for object_id, obj in zip(painted.objects[scene_id], room.objects, strict=True):
            ann = by_id[object_id]
            assert coco.loadCats(ann["category_id"])[0]["name"] == obj.category
            assert np.array_equal(coco.annToMask(ann).astype(bool), obj.mask)
            assert [m["code"] for m in ann["modomo"]["materials"]] == list(obj.materials)
            compared += 1
    assert compared == sum(len(r.objects) for r in painted.rooms.values())


async def test_corrections_win_and_reviewed_only_keeps_approved_and_fixed_objects(
    redis: Redis, world: tuple[Settings, Storage, Painted]
) -> None:
    settings, storage, painted = world
    first, second, third = painted.scene_ids
    fixed, rejected = painted.objects[first][0], painted.objects[first][1]
    await publish(
        redis,
        settings,
        [
            ObjectCorrected(object_id=fixed, scene_id=first, category="bench", corrected_by="r"),
            ReviewSubmitted(
                review_id=fresh_id(), scene_id=first, object_id=rejected, verdict="reject"
            ),
            ReviewSubmitted(review_id=fresh_id(), scene_id=second, verdict="approve"),
        ],
    )
    _, data = await _export(redis, settings, storage, painted.dataset_id, "coco")
    doc = json.loads(_files(data)["annotations/instances.json"])
    objects = {a["modomo"]["object_id"]: a for a in doc["annotations"]}
    assert rejected not in objects
    assert objects[fixed]["modomo"]["category"] == "bench"
    assert objects[fixed]["modomo"]["verdict"] == "fix"
    _, data = await _export(
        redis, settings, storage, painted.dataset_id, "coco", reviewed_only=True
    )
    doc = json.loads(_files(data)["annotations/instances.json"])
    assert {i["modomo"]["scene_id"] for i in doc["images"]} == {first, second}
    assert {a["modomo"]["object_id"] for a in doc["annotations"]} == {
        fixed,
        *painted.objects[second],
    }
    assert third not in json.dumps(doc)


async def test_the_same_position_gives_the_same_bytes_whatever_came_after(
    redis: Redis, world: tuple[Settings, Storage, Painted]
) -> None:
    settings, storage, painted = world
    position, before = await _export(redis, settings, storage, painted.dataset_id, "coco")
    await publish(
        redis,
        settings,
        [
            ObjectCorrected(
                object_id=painted.objects[painted.scene_ids[0]][0],
                scene_id=painted.scene_ids[0],
                category="bench",
            )
        ],
    )
    again_position, again = await _export(
        redis, settings, storage, painted.dataset_id, "coco", as_of=position
    )
    assert again_position == position
    assert again == before
    _, latest = await _export(redis, settings, storage, painted.dataset_id, "coco")
    assert latest != before
    last_event = painted.events[-1]
    by_event = await _export(
        redis, settings, storage, painted.dataset_id, "coco", as_of=last_event.event_id
    )
    assert by_event == (position, before)


async def test_positions_that_cannot_be_exported_are_refused_with_a_reason(
    redis: Redis, world: tuple[Settings, Storage, Painted]
) -> None:
    settings, storage, painted = world
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for as_of, words in (
        ("99999999999999-0", "past the end of the log"),
        (future, "in the future"),
        ("2000-01-01T00:00:00", "no entry at or before"),
        ("yesterday", "--as-of takes"),
        (fresh_id(), "no event"),
    ):
        with pytest.raises(PositionError, match=words):
            await _export(redis, settings, storage, painted.dataset_id, "coco", as_of=as_of)
    with pytest.raises(ExportError, match="does not exist"):
        await _export(redis, settings, storage, fresh_id(), "coco")
    await storage.client.delete_object(
        Bucket=storage.bucket,
        Key=f"masks/{painted.scene_ids[0]}/{painted.objects[painted.scene_ids[0]][0]}.png",
    )
    with pytest.raises(ExportError, match="missing from storage"):
        await _export(redis, settings, storage, painted.dataset_id, "parquet")


@pytest.mark.parametrize("fmt", ["yolo", "yolo-seg"])
async def test_yolo_exports_pass_ultralytics_dataset_checks(
    redis: Redis,
    world: tuple[Settings, Storage, Painted],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
) -> None:
    for name, value in {
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "false",
        "YOLO_CONFIG_DIR": str(tmp_path / "ultralytics"),
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
    }.items():
        monkeypatch.setenv(name, value)
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    settings, storage, painted = world
    _, data = await _export(redis, settings, storage, painted.dataset_id, fmt)
    folder = tmp_path / "dataset"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(folder)
    checked = check_det_dataset(str(folder / "data.yaml"), autodownload=False)
    assert checked["names"][0] == "sofa"
    task = "segment" if fmt == "yolo-seg" else "detect"
    labels = []
    for split in ("train", "val"):
        dataset = YOLODataset(img_path=checked[split], data=checked, task=task, augment=False)
        labels += dataset.labels
    assert len(labels) == 3
    found = sum(len(label["cls"]) for label in labels)
    assert found == sum(len(r.objects) for r in painted.rooms.values())
    if task == "segment":
        assert all(len(label["segments"]) == len(label["cls"]) for label in labels)


async def test_parquet_export_reads_in_pyarrow_one_row_per_object(
    redis: Redis, world: tuple[Settings, Storage, Painted]
) -> None:
    import pyarrow.parquet as pq

    settings, storage, painted = world
    position, data = await _export(redis, settings, storage, painted.dataset_id, "parquet")
    table = pq.read_table(io.BytesIO(_files(data)["objects.parquet"]))
    assert json.loads(table.schema.metadata[b"modomo"])["position"] == position
    rows = table.to_pylist()
    assert len(rows) == sum(len(r.objects) for r in painted.rooms.values())
    for row in rows:
        room = painted.rooms[row["scene_id"]]
        index = painted.objects[row["scene_id"]].index(row["object_id"])
        assert row["scene_type"] == room.scene_type
        assert row["category"] == room.objects[index].category
        assert np.array_equal(decode_rle(json.loads(row["mask_rle"])), room.objects[index].mask)


async def test_the_export_command_writes_the_zip_and_explains_refusals(
    redis: Redis, world: tuple[Settings, Storage, Painted], tmp_path: Path
) -> None:
    settings, storage, painted = world
    env = settings_env(settings)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modomo.cli", "export", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    bad = await asyncio.to_thread(run, painted.dataset_id, "--format", "coco", "--as-of", "soon")
    assert bad.returncode == 2, bad.stderr
    assert "--as-of takes" in bad.stderr
    unknown = await asyncio.to_thread(run, fresh_id(), "--format", "coco")
    assert unknown.returncode == 1
    assert "does not exist" in unknown.stderr
    out = tmp_path / "export.zip"
    done = await asyncio.to_thread(
        run, painted.dataset_id, "--format", "yolo", "--out", str(out), "--as-of", painted.last
    )
    assert done.returncode == 0, done.stderr
    assert f"log position {painted.last}" in done.stdout
    _, data = await _export(redis, settings, storage, painted.dataset_id, "yolo")
    assert out.read_bytes() == data
