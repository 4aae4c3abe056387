"""The pipeline: one scene task through its resolved stages, each result emitted at once.

Stages run in :data:`RUN_ORDER`, which differs from the display order of
:data:`~modomo.domain.stages.STAGES` in one place: ``label`` runs before ``segment``, so the
masks cover the objects only GroundingDINO found too (and a label-only job has objects to
mask at all). A stage that raises is recorded and the scene goes on: the stages that need
its output (``segment`` and ``material`` need objects from ``detect`` or ``label``) are
skipped, the rest still run, and the scene ends ``partial`` naming every stage without a
result. A scene whose original cannot be read or decoded raises an input error instead
(never retried); one where every stage failed, or the GPU ran out of memory, raises a
transient error: the runtime then records ``scene_failed`` and retries.

Every stage runs under ``stage_timeout_s``. Past it the attempt fails (transient). A model
call still running on the GPU thread by then cannot be stopped (threads cannot be killed)
and would hold every later call: the pipeline then raises ``StopWorker``, so the worker
records the failure, takes no more work and exits for its supervisor to restart it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from PIL import Image

from modomo.domain.events import (
    DepthEstimated,
    Detection,
    EventBase,
    Label,
    Mask,
    MasksSegmented,
    MaterialsClassified,
    ObjectMaterials,
    ObjectsDetected,
    ObjectsLabelled,
    PaletteExtracted,
    SceneCaptioned,
    SceneClassified,
    SceneCompleted,
    StageEvent,
    StylesClassified,
)
from modomo.domain.stages import SceneTask, Stage
from modomo.gpu import metrics
from modomo.gpu.batcher import Batcher
from modomo.gpu.image import SceneImage, decode_image
from modomo.gpu.models import Models
from modomo.gpu.stages import caption as caption_stage
from modomo.gpu.stages import clip as clip_stage
from modomo.gpu.stages import depth as depth_stage
from modomo.gpu.stages import objects as object_stage
from modomo.gpu.stages.palette import extract_palette
from modomo.gpu.storage import ObjectStore
from modomo.settings import Settings
from modomo.storage import depth_key, mask_key, thumb_key
from modomo.streams.delivery import StopWorker

RUN_ORDER: tuple[Stage, ...] = (
    "scene",
    "style",
    "detect",
    "label",
    "segment",
    "material",
    "depth",
    "caption",
    "palette",
)
OBJECT_STAGES: frozenset[Stage] = frozenset({"segment", "material"})
"""Stages that work on the objects ``detect`` or ``label`` found."""

Emit = Callable[[EventBase], Awaitable[Any]]
log = structlog.get_logger("modomo.gpu.pipeline")


class AllStagesFailed(RuntimeError):
    """No stage of the scene produced a result."""


class StageDeadlineExceeded(RuntimeError):
    """A stage ran past ``stage_timeout_s``: this attempt fails (transient)."""


@dataclass(slots=True)
class SceneRun:
    """One scene's state while its stages run."""

    task: SceneTask
    attempt: int
    image: SceneImage
    detections: tuple[Detection, ...] | None = None
    labels: tuple[Label, ...] | None = None
    failed: list[Stage] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def scene_id(self) -> str:
        return self.task.scene_id

    @property
    def pil(self) -> Image.Image:
        return self.image.image

    def objects(self) -> list[object_stage.SceneObject]:
        return object_stage.scene_objects(self.detections, self.labels)


StageFn = Callable[["Pipeline", SceneRun], Awaitable[StageEvent]]


class Pipeline:
    """Runs scene tasks on loaded models; safe to run several scenes at once."""

    def __init__(
        self,
        models: Models,
        storage: ObjectStore,
        settings: Settings,
        *,
        batcher: Batcher | None = None,
        stage_fns: dict[Stage, StageFn] | None = None,
    ) -> None:
        self.models = models
        self.storage = storage
        self.settings = settings
        self.batcher = batcher or Batcher(1)
        self.stage_fns: dict[Stage, StageFn] = {**STAGE_FNS, **(stage_fns or {})}

    async def run(self, task: SceneTask, emit: Emit, attempt: int = 1) -> SceneCompleted:
        """Process ``task``, awaiting ``emit`` with each stage's event as soon as it is known.

        Raises:
            ImageError: the original is not a usable image.
            AllStagesFailed: stages were asked for and none produced a result.
        """
        started = time.perf_counter()
        data = await self.storage.get(
            task.r2_key_original, max_bytes=self.settings.max_upload_bytes, etag=task.etag
        )
        image = await asyncio.to_thread(decode_image, data, task.resize_max_px)
        scene = SceneRun(task=task, attempt=attempt, image=image)
        stages = task.stages.resolved()
        done = 0
        for stage in (s for s in RUN_ORDER if s in stages):
            if stage in OBJECT_STAGES and scene.detections is None and scene.labels is None:
                scene.failed.append(stage)  # its object source failed: nothing to work on
                continue
            stage_started = time.perf_counter()
            deadline = asyncio.timeout(self.settings.stage_timeout_s)
            try:
                async with deadline:
                    event = await self.stage_fns[stage](self, scene)
            except Exception as exc:
                if isinstance(exc, TimeoutError) and deadline.expired():
                    raise self._past_deadline(stage) from None
                if _out_of_memory(exc):
                    raise
                scene.failed.append(stage)
                scene.errors[stage] = f"{type(exc).__name__}: {exc}"
                metrics.STAGE_FAILURES.labels(stage=stage).inc()
                log.warning(
                    "stage_failed",
                    stage=stage,
                    scene_id=task.scene_id,
                    error=str(exc),
                    exc_info=exc,
                )
                continue
            seconds = time.perf_counter() - stage_started
            metrics.STAGE_SECONDS.labels(stage=stage).observe(seconds)
            await emit(_with_duration(event, seconds))
            done += 1
        if stages and not done:
            first = next(iter(scene.errors.values()), "no stage could run")
            raise AllStagesFailed(f"every stage failed; first error: {first}")
        objects = scene.objects()
        confidences = [o.confidence for o in objects]
        return SceneCompleted(
            job_id=task.job_id,
            scene_id=task.scene_id,
            attempt=attempt,
            status="partial" if scene.failed else "ok",
            objects=len(objects),
            avg_conf=round(sum(confidences) / len(confidences), 5) if confidences else 0.0,
            failed_stages=tuple(s for s in RUN_ORDER if s in scene.failed),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    def _past_deadline(self, stage: Stage) -> Exception:
        """The error for a stage past its deadline: StopWorker when its model call is
        still on the GPU thread (it has run at least half the deadline and not returned)."""
        limit = self.settings.stage_timeout_s
        key, busy_s = self.batcher.busy_for()
        metrics.STAGE_FAILURES.labels(stage=stage).inc()
        if key and busy_s >= limit / 2:
            return StopWorker(
                f"stage {stage}: a model call ({key}) has run {busy_s:.1f} s on the GPU "
                f"thread, past the {limit:g} s stage deadline, and a thread cannot be "
                "stopped; the worker exits so that its supervisor restarts it"
            )
        return StageDeadlineExceeded(f"stage {stage} ran past its {limit:g} s deadline")

    def _base(self, scene: SceneRun) -> dict[str, Any]:
        return {"job_id": scene.task.job_id, "scene_id": scene.scene_id, "attempt": scene.attempt}

    async def _infer(
        self, key: str, fn: Callable[[Sequence[Any]], Sequence[Any]], item: Any
    ) -> Any:
        return await self.batcher.call(key, fn, item)


def _with_duration(event: StageEvent, seconds: float) -> StageEvent:
    import msgspec

    return msgspec.structs.replace(event, duration_ms=round(seconds * 1000, 1))


def _out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(exc)


# --- the stages ------------------------------------------------------------------------------


async def _scene(p: Pipeline, s: SceneRun) -> StageEvent:
    m = p.models
    top, alternatives, embedding = await p._infer(
        "scene", lambda images: clip_stage.classify_scenes_embedded(m.clip, images), s.pil
    )
    return SceneClassified(
        **p._base(s),
        model=m.clip.ref,
        scene_type=top.code,
        confidence=top.score,
        alternatives=alternatives,
        embedding=embedding,
    )


async def _style(p: Pipeline, s: SceneRun) -> StageEvent:
    m, threshold = p.models, p.settings.style_threshold
    styles = await p._infer(
        "style", lambda images: clip_stage.classify_styles(m.clip, images, threshold), s.pil
    )
    return StylesClassified(**p._base(s), model=m.clip.ref, styles=styles)


async def _detect(p: Pipeline, s: SceneRun) -> StageEvent:
    m, conf = p.models, p.settings.detect_confidence

    def run(items: Sequence[tuple[Image.Image, str]]) -> list[tuple[Detection, ...]]:
        images, ids = zip(*items, strict=True)
        return object_stage.detect(m.detector, m.runtime, images, ids, conf)

    s.detections = await p._infer("detect", run, (s.pil, s.scene_id))
    w, h = s.image.size
    return ObjectsDetected(
        **p._base(s), model=m.detector.ref, objects=s.detections, width=w, height=h
    )


async def _label(p: Pipeline, s: SceneRun) -> StageEvent:
    m, threshold = p.models, p.settings.label_box_threshold

    def run(items: Sequence[tuple[Image.Image, str, tuple[Detection, ...]]]) -> list[Any]:
        images, ids, dets = zip(*items, strict=True)
        return object_stage.label(m.grounder, m.runtime, images, ids, dets, threshold)

    s.labels = await p._infer("label", run, (s.pil, s.scene_id, s.detections or ()))
    return ObjectsLabelled(**p._base(s), model=m.grounder.ref, labels=s.labels)


async def _segment(p: Pipeline, s: SceneRun) -> StageEvent:
    m = p.models
    objects = s.objects()

    def run(items: Sequence[tuple[Image.Image, list[object_stage.SceneObject]]]) -> list[Any]:
        images, objs = zip(*items, strict=True)
        return object_stage.segment(m.segmenter, m.runtime, images, objs)

    masks = await p._infer("segment", run, (s.pil, objects)) if objects else []
    pixels = s.image.size[0] * s.image.size[1]

    async def store(obj: object_stage.SceneObject, mask: Any) -> Mask:
        png = await asyncio.to_thread(object_stage.mask_png, mask)
        jpeg = await asyncio.to_thread(object_stage.thumbnail_jpeg, s.pil, obj.bbox)
        mkey, tkey = mask_key(s.scene_id, obj.object_id), thumb_key(s.scene_id, obj.object_id)
        await p.storage.put(mkey, png, "image/png")
        await p.storage.put(tkey, jpeg, "image/jpeg")
        return Mask(
            object_id=obj.object_id,
            mask_key=mkey,
            thumb_key=tkey,
            area=round(float(mask.sum()) / pixels, 5),
        )

    stored = await asyncio.gather(*(store(o, k) for o, k in zip(objects, masks, strict=True)))
    return MasksSegmented(**p._base(s), model=m.segmenter.ref, masks=tuple(stored))


async def _material(p: Pipeline, s: SceneRun) -> StageEvent:
    m, threshold = p.models, p.settings.material_threshold
    objects = s.objects()
    crops = [object_stage.crop(s.pil, o.bbox) for o in objects]

    def run(items: Sequence[list[Image.Image]]) -> list[list[Any]]:
        # Every crop of every scene in the batch goes through CLIP in one forward.
        flat = [c for scene_crops in items for c in scene_crops]
        scored = clip_stage.classify_materials_embedded(m.clip, flat, threshold)
        out, at = [], 0
        for scene_crops in items:
            out.append(scored[at : at + len(scene_crops)])
            at += len(scene_crops)
        return out

    scored = await p._infer("material", run, crops) if crops else []
    return MaterialsClassified(
        **p._base(s),
        model=m.clip.ref,
        objects=tuple(
            ObjectMaterials(object_id=o.object_id, materials=mats, embedding=embedding)
            for o, (mats, embedding) in zip(objects, scored, strict=True)
        ),
    )


async def _depth(p: Pipeline, s: SceneRun) -> StageEvent:
    m = p.models
    values = await p._infer(
        "depth", lambda images: depth_stage.estimate_depth(m.depth, m.runtime, images), s.pil
    )
    png, near, far = await asyncio.to_thread(depth_stage.depth_png, values)
    key = depth_key(s.scene_id)
    await p.storage.put(key, png, "image/png")
    return DepthEstimated(
        **p._base(s), model=m.depth.ref, depth_key=key, near=round(near, 6), far=round(far, 6)
    )


async def _caption(p: Pipeline, s: SceneRun) -> StageEvent:
    m = p.models
    text = await p._infer(
        "caption", lambda images: caption_stage.caption(m.captioner, m.runtime, images), s.pil
    )
    return SceneCaptioned(**p._base(s), model=m.captioner.ref, caption=text)


PALETTE_MODEL_ID = "sklearn:kmeans-cielab"


async def _palette(p: Pipeline, s: SceneRun) -> StageEvent:
    from modomo.domain.events import ModelRef

    # CPU only: runs beside the GPU thread rather than on it.
    colours = await asyncio.to_thread(extract_palette, s.pil)
    return PaletteExtracted(
        **p._base(s),
        model=ModelRef(id=PALETTE_MODEL_ID, profile=p.models.profile),
        colours=colours,
    )


STAGE_FNS: dict[Stage, StageFn] = {
    "scene": _scene,
    "style": _style,
    "detect": _detect,
    "label": _label,
    "segment": _segment,
    "material": _material,
    "depth": _depth,
    "caption": _caption,
    "palette": _palette,
}
