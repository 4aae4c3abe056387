"""Seeded synthetic event logs, shaped like real ones, for tests and benchmarks.

A dataset is created and its scenes registered; a job runs every scene through the nine
stages (some attempts fail and are retried, a few scenes end partial or dead); reviewers
correct objects and leave verdicts; a later job reruns only the depth stage on some scenes.
Scene histories interleave the way concurrent workers' events do. Same seed, same log.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from modomo.domain.events import (
    AttemptError,
    Colour,
    DatasetCreated,
    DepthEstimated,
    Detection,
    EventBase,
    JobCreated,
    Label,
    Mask,
    MasksSegmented,
    MaterialsClassified,
    ModelRef,
    ObjectCorrected,
    ObjectMaterials,
    ObjectsDetected,
    ObjectsLabelled,
    PaletteExtracted,
    RegisteredScene,
    ReviewSubmitted,
    SceneCaptioned,
    SceneClassified,
    SceneCompleted,
    SceneDeadLettered,
    SceneFailed,
    SceneQueued,
    ScenesRegistered,
    SceneStarted,
    Scored,
    StylesClassified,
)
from modomo.domain.stages import StageFlags
from modomo.domain.taxonomies import FURNITURE, MATERIALS, SCENE_TYPES, STYLES

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.now = _EPOCH

    def tick(self) -> datetime:
        self.now += timedelta(milliseconds=7)
        return self.now


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def synthetic_log(
    seed: int = 0,
    scenes: int = 20,
    *,
    failure_rate: float = 0.1,
    reviews: bool = True,
    rerun: bool = True,
    workers: int = 8,
) -> list[EventBase]:
    """A whole log over ``scenes`` scenes, about 15 events per scene.

    ``workers`` scenes are in flight at once, as with that many GPU workers: their events
    interleave, while the scenes behind them wait their turn.
    """
    rng = random.Random(seed)
    clock = _Clock()

    def stamp() -> dict[str, Any]:
        return {"event_id": _uuid(rng), "at": clock.tick()}

    dataset_id = _uuid(rng)
    scene_ids = [_uuid(rng) for _ in range(scenes)]
    log: list[EventBase] = [
        DatasetCreated(dataset_id=dataset_id, name=f"rooms-{seed}", **stamp()),
    ]
    for start in range(0, scenes, 50):
        log.append(
            ScenesRegistered(
                dataset_id=dataset_id,
                scenes=tuple(
                    RegisteredScene(
                        scene_id=s,
                        r2_key_original=f"scenes/{s}.jpg",
                        size_bytes=rng.randint(10_000, 900_000),
                    )
                    for s in scene_ids[start : start + 50]
                ),
                **stamp(),
            )
        )
    job_id = _uuid(rng)
    log.append(
        JobCreated(job_id=job_id, dataset_id=dataset_id, scene_ids=tuple(scene_ids), **stamp())
    )
    histories = [_scene_history(rng, job_id, s, failure_rate) for s in scene_ids]
    log.extend(_interleave(rng, histories, stamp, workers))

    if reviews:
        for scene_id, history in zip(scene_ids, histories, strict=True):
            detected = [e for e in history if isinstance(e, ObjectsDetected)]
            if not detected or not detected[-1].objects or rng.random() > 0.3:
                continue
            obj = rng.choice(detected[-1].objects)
            log.append(
                ObjectCorrected(
                    object_id=obj.object_id,
                    scene_id=scene_id,
                    category=rng.choice(FURNITURE.terms).code,
                    materials=(rng.choice(MATERIALS.terms).code,),
                    attrs={"colour": "oak"},
                    corrected_by="reviewer-1",
                    **stamp(),
                )
            )
            log.append(
                ReviewSubmitted(
                    review_id=_uuid(rng),
                    scene_id=scene_id,
                    object_id=obj.object_id,
                    verdict="fix",
                    note="wrong category",
                    reviewer="reviewer-1",
                    **stamp(),
                )
            )
    if rerun and scenes:
        chosen = rng.sample(scene_ids, max(1, scenes // 5))
        rerun_job = _uuid(rng)
        log.append(
            JobCreated(
                job_id=rerun_job,
                dataset_id=dataset_id,
                scene_ids=tuple(chosen),
                stages=StageFlags(
                    scene=False,
                    style=False,
                    detect=False,
                    segment=False,
                    label=False,
                    material=False,
                    caption=False,
                    palette=False,
                ),
                **stamp(),
            )
        )
        for scene_id in chosen:
            log.append(SceneQueued(job_id=rerun_job, scene_id=scene_id, **stamp()))
            log.append(SceneStarted(job_id=rerun_job, scene_id=scene_id, **stamp()))
            log.append(
                DepthEstimated(
                    job_id=rerun_job,
                    scene_id=scene_id,
                    model=ModelRef(id="depth-anything-v2-base"),
                    depth_key=f"depth/{scene_id}.png",
                    near=0.4,
                    far=7.5,
                    **stamp(),
                )
            )
            log.append(SceneCompleted(job_id=rerun_job, scene_id=scene_id, status="ok", **stamp()))
    return log


def _interleave(
    rng: random.Random,
    histories: list[list[EventBase]],
    stamp: Callable[[], dict[str, Any]],
    workers: int,
) -> list[EventBase]:
    """Merge the scenes' histories, each kept in its own order, restamped in log order,
    with at most ``workers`` histories in progress at a time."""
    cursors = [0] * len(histories)
    waiting = [i for i, h in enumerate(histories) if h]
    waiting.reverse()
    live = [waiting.pop() for _ in range(min(workers, len(waiting)))]
    out: list[EventBase] = []
    while live:
        k = rng.randrange(len(live))
        i = live[k]
        event = histories[i][cursors[i]]
        out.append(msgspec.structs.replace(event, **stamp()))
        cursors[i] += 1
        if cursors[i] == len(histories[i]):
            live.pop(k)
            if waiting:
                live.append(waiting.pop())
    return out


def _scene_history(
    rng: random.Random, job_id: str, scene_id: str, failure_rate: float
) -> list[EventBase]:
    out: list[EventBase] = [SceneQueued(job_id=job_id, scene_id=scene_id)]
    errors: list[AttemptError] = []
    for attempt in (1, 2, 3):
        out.append(SceneStarted(job_id=job_id, scene_id=scene_id, attempt=attempt))
        crash_at = rng.randrange(9) if rng.random() < failure_rate else None
        stages = _stage_events(rng, job_id, scene_id, attempt)
        if crash_at is None:
            out.extend(stages)
            failed_stage = rng.random() < failure_rate / 2
            objects = next(e.objects for e in stages if isinstance(e, ObjectsDetected))
            avg = sum(o.confidence for o in objects) / len(objects) if objects else 0.0
            out.append(
                SceneCompleted(
                    job_id=job_id,
                    scene_id=scene_id,
                    attempt=attempt,
                    status="partial" if failed_stage else "ok",
                    objects=len(objects),
                    avg_conf=round(avg, 4),
                    failed_stages=("caption",) if failed_stage else (),
                )
            )
            return out
        out.extend(stages[:crash_at])
        error = f"RuntimeError: CUDA OOM in stage {crash_at}"
        errors.append(AttemptError(attempt=attempt, error=error, at=_EPOCH))
        out.append(
            SceneFailed(
                job_id=job_id,
                scene_id=scene_id,
                attempt=attempt,
                error=error,
                will_retry=attempt < 3,
            )
        )
    out.append(SceneDeadLettered(job_id=job_id, scene_id=scene_id, attempt=3, errors=tuple(errors)))
    return out


def _stage_events(rng: random.Random, job_id: str, scene_id: str, attempt: int) -> list[EventBase]:
    common: dict[str, Any] = {"job_id": job_id, "scene_id": scene_id, "attempt": attempt}
    n = rng.randint(0, 6)
    objects = []
    for i in range(n):
        x0, y0 = rng.random() * 0.7, rng.random() * 0.7
        objects.append(
            Detection(
                object_id=str(uuid.uuid5(uuid.UUID(scene_id), f"detect:{i}")),
                category=rng.choice(FURNITURE.terms).code,
                confidence=round(rng.uniform(0.3, 1), 4),
                bbox=(round(x0, 4), round(y0, 4), round(x0 + 0.2, 4), round(y0 + 0.2, 4)),
                label="chair",
            )
        )
    extra = str(uuid.uuid5(uuid.UUID(scene_id), "label:0"))
    labels = [
        Label(
            object_id=o.object_id,
            category=o.category,
            confidence=o.confidence,
            bbox=o.bbox,
            phrase="a chair",
        )
        for o in objects[:2]
    ]
    if rng.random() < 0.5:
        labels.append(
            Label(
                object_id=extra,
                category=rng.choice(FURNITURE.terms).code,
                confidence=0.5,
                bbox=(0.1, 0.1, 0.3, 0.3),
                phrase="a lamp",
            )
        )
    ids = [o.object_id for o in objects] + [lab.object_id for lab in labels[len(objects[:2]) :]]
    return [
        SceneClassified(
            **common,
            model=ModelRef(id="clip-vit-b32"),
            scene_type=rng.choice(SCENE_TYPES.terms).code,
            confidence=round(rng.random(), 4),
            duration_ms=12.5,
        ),
        StylesClassified(
            **common,
            model=ModelRef(id="clip-vit-b32"),
            styles=tuple(
                Scored(code=t.code, score=round(rng.random(), 4))
                for t in rng.sample(STYLES.terms, 2)
            ),
        ),
        ObjectsDetected(
            **common,
            model=ModelRef(id="yolov8n"),
            objects=tuple(objects),
            width=1280,
            height=960,
        ),
        MasksSegmented(
            **common,
            model=ModelRef(id="sam2.1-tiny"),
            masks=tuple(
                Mask(
                    object_id=o.object_id,
                    mask_key=f"masks/{scene_id}/{o.object_id}.png",
                    thumb_key=f"thumbs/{scene_id}/{o.object_id}.jpg",
                    area=0.04,
                )
                for o in objects
            ),
        ),
        ObjectsLabelled(
            **common,
            model=ModelRef(id="grounding-dino-tiny"),
            labels=tuple(labels),
        ),
        DepthEstimated(
            **common,
            model=ModelRef(id="depth-anything-v2-small"),
            depth_key=f"depth/{scene_id}.png",
            near=0.5,
            far=8.0,
        ),
        MaterialsClassified(
            **common,
            model=ModelRef(id="clip-vit-b32"),
            objects=tuple(
                ObjectMaterials(
                    object_id=i,
                    materials=(
                        Scored(code=rng.choice(MATERIALS.terms).code, score=round(rng.random(), 4)),
                    ),
                )
                for i in ids
            ),
        ),
        SceneCaptioned(
            **common,
            model=ModelRef(id="blip-base"),
            caption=f"a {rng.choice(STYLES.terms).name.lower()} room",
        ),
        PaletteExtracted(
            **common,
            model=ModelRef(id="kmeans-lab"),
            colours=tuple(
                Colour(hex=f"#{rng.randrange(1 << 24):06x}", lab=(50.0, 1.5, -3.25), share=0.2)
                for _ in range(5)
            ),
        ),
    ]
