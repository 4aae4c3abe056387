"""The whole pipeline over stage-flag combinations, partial scenes and failed scenes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modomo.domain.events import (
    STAGE_OF,
    DepthEstimated,
    EventBase,
    MasksSegmented,
    MaterialsClassified,
    ObjectsDetected,
    ObjectsLabelled,
    StageEvent,
)
from modomo.domain.stages import STAGES, SceneTask, Stage, StageFlags
from modomo.gpu.batcher import Batcher
from modomo.gpu.image import ImageError
from modomo.gpu.models import Models
from modomo.gpu.pipeline import RUN_ORDER, AllStagesFailed, Pipeline, SceneRun
from modomo.gpu.storage import DirStorage
from modomo.settings import Settings
from tests.gpu.images import jpeg_bytes, room_image

pytestmark = pytest.mark.gpu

SCENE = "5a4c1a52-4c9d-4a55-8f5e-0c2b9d1e7a01"


def only(*stages: Stage) -> StageFlags:
    return StageFlags(**{stage: stage in stages for stage in STAGES})


async def run_scene(
    pipeline: Pipeline, storage: DirStorage, flags: StageFlags, data: bytes | None = None
) -> tuple[list[EventBase], object]:
    await storage.put(f"scenes/{SCENE}.jpg", data or jpeg_bytes(room_image()), "image/jpeg")
    task = SceneTask(
        job_id="job-1", scene_id=SCENE, r2_key_original=f"scenes/{SCENE}.jpg", stages=flags
    )
    events: list[EventBase] = []

    async def emit(event: EventBase) -> None:
        events.append(event)

    done = await pipeline.run(task, emit)
    return events, done


def stored_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*"))


@pytest.fixture
def storage(storage_root: Path) -> DirStorage:
    return DirStorage(storage_root)


@pytest.fixture
def pipeline(models: Models, storage: DirStorage, gpu_settings: Settings) -> Pipeline:
    return Pipeline(models, storage, gpu_settings)


FLAG_CASES = [
    StageFlags(),
    only(),
    only("scene"),
    only("palette", "caption"),
    only("segment"),  # pulls in detect
    only("material"),  # pulls in detect
    only("label", "segment", "material"),  # label alone feeds the object stages
    only("detect", "label"),
    only("depth", "style"),
]


def flag_id(flags: StageFlags) -> str:
    return "".join("1" if getattr(flags, stage) else "0" for stage in STAGES)


@pytest.mark.parametrize("flags", FLAG_CASES, ids=flag_id)
async def test_flags_give_the_resolved_stage_events_in_run_order(
    pipeline: Pipeline, storage: DirStorage, flags: StageFlags
) -> None:
    if not flags.resolved():
        events, done = await run_scene(pipeline, storage, flags)
        assert events == []
        assert done.status == "ok"  # type: ignore[attr-defined]
        return
    events, done = await run_scene(pipeline, storage, flags)
    expected = [s for s in RUN_ORDER if s in flags.resolved()]
    assert [STAGE_OF[type(e)] for e in events] == expected  # type: ignore[index]
    assert all(isinstance(e, StageEvent) and e.scene_id == SCENE for e in events)
    assert all(e.model.profile == "tiny" and e.model.id for e in events)  # type: ignore[attr-defined]
    assert done.status == "ok"
    assert done.failed_stages == ()


async def test_full_scene_writes_its_artifacts_under_deterministic_keys(
    pipeline: Pipeline, storage: DirStorage, storage_root: Path
) -> None:
    events, done = await run_scene(pipeline, storage, StageFlags())
    by_type = {type(e): e for e in events}
    detected = by_type[ObjectsDetected]
    labelled = by_type[ObjectsLabelled]
    masks = by_type[MasksSegmented]
    depth = by_type[DepthEstimated]
    materials = by_type[MaterialsClassified]
    assert isinstance(detected, ObjectsDetected)
    assert isinstance(masks, MasksSegmented)
    assert isinstance(labelled, ObjectsLabelled)
    assert isinstance(depth, DepthEstimated)
    assert isinstance(materials, MaterialsClassified)
    object_ids = {d.object_id for d in detected.objects} | {x.object_id for x in labelled.labels}
    assert {m.object_id for m in masks.masks} == object_ids
    assert {m.object_id for m in materials.objects} == object_ids
    assert done.objects == len(object_ids)  # type: ignore[attr-defined]
    for mask in masks.masks:
        assert mask.mask_key == f"masks/{SCENE}/{mask.object_id}.png"
        assert mask.thumb_key == f"thumbs/{SCENE}/{mask.object_id}.jpg"
        png = Image.open(io.BytesIO(await storage.get(mask.mask_key)))
        assert png.size == (detected.width, detected.height)
        assert png.mode == "L"
        assert Image.open(io.BytesIO(await storage.get(mask.thumb_key))).format == "JPEG"
        assert 0 <= mask.area <= 1
    assert depth.depth_key == f"depth/{SCENE}.png"
    grey = np.asarray(Image.open(io.BytesIO(await storage.get(depth.depth_key))))
    assert grey.dtype == np.uint16
    assert grey.shape == (detected.height, detected.width)
    files = stored_files(storage_root)
    # A retry computes the same ids and overwrites: no new files appear.
    await run_scene(pipeline, storage, StageFlags())
    again = stored_files(storage_root)
    assert again == files


async def test_a_failing_stage_leaves_a_partial_scene_with_the_rest_kept(
    pipeline: Pipeline, storage: DirStorage, storage_root: Path
) -> None:
    # A real failure: "masks" is a file, so the segment stage cannot write its PNGs.
    (storage_root / "masks").write_bytes(b"in the way")
    events, done = await run_scene(pipeline, storage, StageFlags())
    stages = [STAGE_OF[type(e)] for e in events]  # type: ignore[index]
    assert stages == [s for s in RUN_ORDER if s != "segment"]
    assert done.status == "partial"  # type: ignore[attr-defined]
    assert done.failed_stages == ("segment",)  # type: ignore[attr-defined]


async def test_a_failed_object_source_skips_the_stages_that_need_it(
    models: Models, storage: DirStorage, gpu_settings: Settings
) -> None:
    async def broken_detector(p: Pipeline, s: SceneRun) -> StageEvent:
        raise RuntimeError("detector weights are corrupt")

    pipeline = Pipeline(models, storage, gpu_settings, stage_fns={"detect": broken_detector})
    events, done = await run_scene(
        pipeline, storage, only("scene", "detect", "segment", "material")
    )
    assert [STAGE_OF[type(e)] for e in events] == ["scene"]  # type: ignore[index]
    assert done.status == "partial"  # type: ignore[attr-defined]
    assert done.failed_stages == ("detect", "segment", "material")  # type: ignore[attr-defined]
    # When nothing at all succeeds, the scene fails (and the runtime retries it).
    with pytest.raises(AllStagesFailed, match="detector weights are corrupt"):
        await run_scene(pipeline, storage, only("detect", "segment"))


async def test_a_corrupt_original_raises_a_readable_error(
    pipeline: Pipeline, storage: DirStorage
) -> None:
    with pytest.raises(ImageError, match="truncated or corrupt"):
        await run_scene(pipeline, storage, StageFlags(), jpeg_bytes(room_image())[:3000])
    with pytest.raises(ImageError, match="not an image"):
        await run_scene(pipeline, storage, StageFlags(), b"<html>login page</html>")


async def test_a_4000_px_photo_is_processed_at_1280(
    pipeline: Pipeline, storage: DirStorage
) -> None:
    events, _ = await run_scene(
        pipeline, storage, only("detect", "depth"), jpeg_bytes(room_image(4000, 3000))
    )
    detected = events[0]
    assert isinstance(detected, ObjectsDetected)
    assert (detected.width, detected.height) == (1280, 960)


async def test_optimized_mode_batches_scenes_and_matches_sequential(
    models: Models, storage: DirStorage, gpu_settings: Settings
) -> None:
    import asyncio

    flags = only("scene", "detect", "label", "depth", "caption")
    ids = [f"0000000{i}-0000-4000-8000-000000000000" for i in range(3)]
    for i, scene_id in enumerate(ids):
        await storage.put(f"scenes/{scene_id}.jpg", jpeg_bytes(room_image(seed=i)), "image/jpeg")
    tasks = [
        SceneTask(job_id="j", scene_id=s, r2_key_original=f"scenes/{s}.jpg", stages=flags)
        for s in ids
    ]

    async def collect(pipeline: Pipeline, task: SceneTask) -> list[EventBase]:
        out: list[EventBase] = []

        async def emit(event: EventBase) -> None:
            out.append(event)

        await pipeline.run(task, emit)
        return out

    sequential = Pipeline(models, storage, gpu_settings)
    one_by_one = [await collect(sequential, t) for t in tasks]
    batcher = Batcher(max_batch=8)
    optimized = Pipeline(models, storage, gpu_settings, batcher=batcher)
    together = await asyncio.gather(*(collect(optimized, t) for t in tasks))
    # Scenes reaching a stage while the model is busy share its next forward.
    assert sum(batcher.batch_sizes["scene"]) == 3
    assert max(size for sizes in batcher.batch_sizes.values() for size in sizes) >= 2
    for a, b in zip(one_by_one, together, strict=True):
        assert [type(e) for e in a] == [type(e) for e in b]
        for x, y in zip(a, b, strict=True):
            if isinstance(x, ObjectsDetected):
                assert isinstance(y, ObjectsDetected)
                assert [d.object_id for d in x.objects] == [d.object_id for d in y.objects]
                assert [d.category for d in x.objects] == [d.category for d in y.objects]


async def test_scene_and_crop_embeddings_ride_on_their_clip_stages(
    pipeline: Pipeline, storage: DirStorage
) -> None:
    from modomo.domain.events import SceneClassified

    events, _ = await run_scene(pipeline, storage, only("scene", "label", "material"))
    (scene,) = [e for e in events if isinstance(e, SceneClassified)]
    (materials,) = [e for e in events if isinstance(e, MaterialsClassified)]
    assert scene.embedding is not None
    vectors = [np.array(scene.embedding.floats())]
    assert materials.objects, "the tiny label model finds objects in the room"
    for item in materials.objects:
        assert item.embedding is not None
        assert item.embedding.dim == scene.embedding.dim
        vectors.append(np.array(item.embedding.floats()))
    norms = np.linalg.norm(np.stack(vectors), axis=1)
    assert np.allclose(norms, 1.0, atol=2e-3)  # normalised, within float16
