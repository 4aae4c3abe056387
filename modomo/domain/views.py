"""Pure folds of the read models: what each table's rows become after an event.

The Postgres projectors load the rows an event batch touches into these views, apply the
batch with the functions here, and write the views back, so the tables always equal the
pure fold of the log (a hypothesis test holds them to it).

Rows are msgspec Structs with ``gc=False``: they hold no reference cycles, and keeping
them out of the cyclic collector's sight makes a large batch markedly faster.

Rules the scene view keeps:

- Stage results fill their columns as they arrive (partial saves stay visible).
- A later event of the same stage replaces that stage's result (a retry's later attempt,
  or a later job that reran only some stages) and leaves the other stages' results alone.
  Every result records the model that produced it.
- A reviewer's correction outranks the models: a rerun keeps a corrected object's
  category, box, attributes and materials.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from modomo.domain.events import (
    STAGE_OF,
    DepthEstimated,
    EventBase,
    JobCreated,
    MasksSegmented,
    MaterialsClassified,
    ObjectCorrected,
    ObjectsDetected,
    ObjectsLabelled,
    PaletteExtracted,
    RegisteredScene,
    SceneCaptioned,
    SceneClassified,
    SceneCompleted,
    SceneDeadLettered,
    SceneFailed,
    SceneQueued,
    SceneRequeued,
    SceneStarted,
    StageEvent,
    StylesClassified,
)
from modomo.domain.fold import SceneState, apply_scene, job_status
from modomo.domain.orgs import DEFAULT_ORG


class Unapplicable(ValueError):
    """The event refers to something the read model does not have; it gets parked."""


class SceneRow(msgspec.Struct, kw_only=True, gc=False):
    scene_id: str
    dataset_id: str
    r2_key_original: str
    content_type: str
    size_bytes: int
    filename: str
    registered_at: datetime
    status: str = "registered"
    last_job_id: str | None = None
    scene_type: str | None = None
    scene_type_conf: float | None = None
    scene_type_model: str | None = None
    style_model: str | None = None
    width: int | None = None
    height: int | None = None
    detect_model: str | None = None
    label_model: str | None = None
    segment_model: str | None = None
    depth_key: str | None = None
    depth_near: float | None = None
    depth_far: float | None = None
    depth_model: str | None = None
    material_model: str | None = None
    caption: str | None = None
    caption_model: str | None = None
    palette: list[dict[str, Any]] | None = None
    palette_model: str | None = None
    object_count: int = 0
    avg_conf: float = 0.0
    updated_at: datetime | None = None
    model_refs: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)
    """Stage → ``{"id", "profile", "digest"}`` of the model behind that stage's result."""
    etag: str = ""
    """The original's ETag when it was registered."""
    org_id: str = DEFAULT_ORG
    """The organisation the scene belongs to: set by its first registration, never moved."""


class StyleRow(msgspec.Struct, kw_only=True, gc=False):
    scene_id: str
    style_code: str
    score: float
    model: str


class ObjectRow(msgspec.Struct, kw_only=True, gc=False):
    object_id: str
    scene_id: str
    category_code: str
    confidence: float
    bbox: list[float]
    label: str
    source: str
    """``detect`` or ``label``: which stage found it (and which stage's rerun replaces it)."""
    model: str
    mask_key: str | None = None
    thumb_key: str | None = None
    area: float | None = None
    segment_model: str | None = None
    attrs: dict[str, Any] = msgspec.field(default_factory=dict)
    corrected_by: str | None = None
    corrected_at: datetime | None = None
    detect_category: str | None = None
    """The category the detector (YOLO) gave, kept when the labeller renames the object."""
    label_category: str | None = None
    """The category the open-vocabulary labeller (GroundingDINO) gave, if it saw the object."""
    material_margin: float | None = None
    """Top material score minus the runner-up's (the top score alone when there is one);
    None without model-scored materials. Small: the material model hesitated."""
    dataset_id: str | None = None
    """The scene's dataset, so a dataset's objects are found (and ranked) by one index."""


class MaterialRow(msgspec.Struct, kw_only=True, gc=False):
    object_id: str
    material_code: str
    scene_id: str
    score: float
    model: str


CORRECTION_MODEL = "review"
"""The ``model`` of a row a reviewer wrote."""


class SceneView(msgspec.Struct, kw_only=True, gc=False):
    """One scene's rows across ``scenes``, ``scene_styles``, ``objects`` and
    ``object_materials``."""

    row: SceneRow
    styles: dict[str, StyleRow] = msgspec.field(default_factory=dict)
    objects: dict[str, ObjectRow] = msgspec.field(default_factory=dict)
    materials: dict[tuple[str, str], MaterialRow] = msgspec.field(default_factory=dict)
    touched: set[str] = msgspec.field(default_factory=set)
    """Which of ``styles``, ``objects``, ``materials`` changed since loaded (a writer
    rewrites only those); not part of any row."""


def register(
    view: SceneView | None,
    dataset_id: str,
    scene: RegisteredScene,
    at: datetime,
    org: str = DEFAULT_ORG,
) -> SceneView:
    """A scene registered (again): its original's key and metadata; results stay, and so
    does its organisation (a scene never changes hands)."""
    if view is None:
        return SceneView(
            row=SceneRow(
                scene_id=scene.scene_id,
                dataset_id=dataset_id,
                r2_key_original=scene.r2_key_original,
                content_type=scene.content_type,
                size_bytes=scene.size_bytes,
                filename=scene.filename,
                registered_at=at,
                updated_at=at,
                etag=scene.etag,
                org_id=org,
            )
        )
    row = view.row
    row.dataset_id = dataset_id
    row.r2_key_original = scene.r2_key_original
    row.content_type = scene.content_type
    row.size_bytes = scene.size_bytes
    row.filename = scene.filename
    row.etag = scene.etag
    row.updated_at = at
    return view


def apply_scene_view(view: SceneView, event: EventBase) -> None:
    """Fold one scene event into ``view`` in place; raises Unapplicable to park it."""
    row = view.row
    match event:
        case SceneQueued() | SceneRequeued():
            row.status = "queued"
            row.last_job_id = event.job_id
        case SceneStarted():
            row.status = "running"
            row.last_job_id = event.job_id
        case SceneClassified(model=model):
            row.scene_type = event.scene_type
            row.scene_type_conf = event.confidence
            row.scene_type_model = model.id
        case StylesClassified(model=model):
            view.touched.add("styles")
            view.styles = {
                s.code: StyleRow(
                    scene_id=row.scene_id, style_code=s.code, score=s.score, model=model.id
                )
                for s in event.styles
            }
            row.style_model = model.id
        case ObjectsDetected(model=model):
            row.width, row.height = event.width or row.width, event.height or row.height
            fresh = {
                d.object_id: ObjectRow(
                    object_id=d.object_id,
                    scene_id=row.scene_id,
                    category_code=d.category,
                    confidence=d.confidence,
                    bbox=list(d.bbox),
                    label=d.label,
                    source="detect",
                    model=model.id,
                    detect_category=d.category,
                    dataset_id=row.dataset_id,
                )
                for d in event.objects
            }
            _replace_objects(view, "detect", fresh)
            row.detect_model = model.id
        case ObjectsLabelled(model=model):
            fresh = {}
            for label in event.labels:
                known = view.objects.get(label.object_id)
                if known is not None and known.source == "detect":
                    if known.corrected_by is None:
                        known.category_code = label.category
                    known.label = label.phrase or known.label
                    known.label_category = label.category
                    continue
                fresh[label.object_id] = ObjectRow(
                    object_id=label.object_id,
                    scene_id=row.scene_id,
                    category_code=label.category,
                    confidence=label.confidence,
                    bbox=list(label.bbox),
                    label=label.phrase,
                    source="label",
                    model=model.id,
                    label_category=label.category,
                    dataset_id=row.dataset_id,
                )
            _replace_objects(view, "label", fresh)
            row.label_model = model.id
        case MasksSegmented(model=model):
            view.touched.add("objects")
            for mask in event.masks:
                obj = view.objects.get(mask.object_id)
                if obj is not None:
                    obj.mask_key, obj.thumb_key, obj.area = mask.mask_key, mask.thumb_key, mask.area
                    obj.segment_model = model.id
            row.segment_model = model.id
        case DepthEstimated(model=model):
            row.depth_key, row.depth_near, row.depth_far = event.depth_key, event.near, event.far
            row.depth_model = model.id
        case MaterialsClassified(model=model):
            for scored in event.objects:
                obj = view.objects.get(scored.object_id)
                if obj is None or obj.corrected_by is not None:
                    continue
                _set_materials(
                    view, scored.object_id, [(m.code, m.score) for m in scored.materials], model.id
                )
            row.material_model = model.id
        case SceneCaptioned(model=model):
            row.caption, row.caption_model = event.caption, model.id
        case PaletteExtracted(model=model):
            row.palette = [
                {"hex": c.hex, "lab": list(c.lab), "share": c.share} for c in event.colours
            ]
            row.palette_model = model.id
        case SceneCompleted():
            row.status = event.status
            row.last_job_id = event.job_id
            row.object_count = event.objects
            row.avg_conf = event.avg_conf
        case SceneFailed(will_retry=will_retry):
            row.status = "running" if will_retry else "failed"
            row.last_job_id = event.job_id
        case SceneDeadLettered():
            row.status = "failed"
            row.last_job_id = event.job_id
        case ObjectCorrected():
            _correct(view, event)
        case _:
            return
    if isinstance(event, StageEvent):
        model = event.model
        row.model_refs = {
            **row.model_refs,
            STAGE_OF[type(event)]: {
                "id": model.id,
                "profile": model.profile,
                "digest": model.digest,
            },
        }
    # Only after the event applied: a parked event leaves the view as it was.
    row.updated_at = event.at


def _replace_objects(view: SceneView, source: str, fresh: dict[str, ObjectRow]) -> None:
    """A stage's new objects replace that stage's old ones; corrections survive a rerun."""
    view.touched.update(("objects", "materials"))
    for object_id, old in list(view.objects.items()):
        if old.source != source:
            continue
        new = fresh.get(object_id)
        if new is None:
            del view.objects[object_id]
            for key in [k for k in view.materials if k[0] == object_id]:
                del view.materials[key]
            continue
        new.mask_key, new.thumb_key, new.area = old.mask_key, old.thumb_key, old.area
        new.segment_model, new.material_margin = old.segment_model, old.material_margin
        if new.source == "detect":  # the labeller's verdict on the same object still stands
            new.label_category = old.label_category
        if old.corrected_by is not None:
            new.category_code, new.bbox, new.attrs = old.category_code, old.bbox, old.attrs
            new.corrected_by, new.corrected_at = old.corrected_by, old.corrected_at
    view.objects.update(fresh)


def _set_materials(
    view: SceneView, object_id: str, scored: list[tuple[str, float]], model: str
) -> None:
    view.touched.update(("materials", "objects"))
    for key in [k for k in view.materials if k[0] == object_id]:
        del view.materials[key]
    scores = sorted((score for _, score in scored), reverse=True)
    view.objects[object_id].material_margin = (
        None if model == CORRECTION_MODEL or not scores else scores[0] - (scores[1:] or [0.0])[0]
    )
    for code, score in scored:
        view.materials[(object_id, code)] = MaterialRow(
            object_id=object_id,
            material_code=code,
            scene_id=view.row.scene_id,
            score=score,
            model=model,
        )


def _correct(view: SceneView, event: ObjectCorrected) -> None:
    obj = view.objects.get(event.object_id)
    if obj is None:
        raise Unapplicable(f"object {event.object_id} is not in scene {event.scene_id}")
    view.touched.add("objects")
    if event.category is not None:
        obj.category_code = event.category
    if event.bbox is not None:
        obj.bbox = list(event.bbox)
    if event.attrs is not None:
        obj.attrs = {**obj.attrs, **event.attrs}
    if event.materials is not None:
        _set_materials(
            view, obj.object_id, [(code, 1.0) for code in event.materials], CORRECTION_MODEL
        )
    obj.corrected_by = event.corrected_by or "reviewer"
    obj.corrected_at = event.at


# --- jobs ------------------------------------------------------------------------------------


class JobRow(msgspec.Struct, kw_only=True, gc=False):
    job_id: str
    dataset_id: str
    status: str
    total: int
    queued: int
    running: int
    ok: int
    partial: int
    failed: int
    stages: dict[str, bool]
    resize_max_px: int
    created_by: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    org_id: str = DEFAULT_ORG


class JobSceneRow(msgspec.Struct, kw_only=True, gc=False):
    job_id: str
    scene_id: str
    status: str = "queued"
    attempt: int = 0
    phase: int = 0
    stages: list[str] = msgspec.field(default_factory=list)
    errors: list[dict[str, Any]] = msgspec.field(default_factory=list)
    objects: int = 0
    avg_conf: float = 0.0
    stage_ms: dict[str, float] = msgspec.field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    org_id: str = DEFAULT_ORG

    def state(self) -> SceneState:
        return SceneState(
            scene_id=self.scene_id,
            status=self.status,  # type: ignore[arg-type]
            attempt=self.attempt,
            phase=self.phase,
            stages=frozenset(self.stages),  # type: ignore[arg-type]
            errors=tuple((e["attempt"], e["error"]) for e in self.errors),
            objects=self.objects,
            avg_conf=self.avg_conf,
        )

    def take(self, state: SceneState) -> None:
        self.status, self.attempt, self.phase = state.status, state.attempt, state.phase
        self.stages = sorted(state.stages)
        self.errors = [{"attempt": a, "error": e} for a, e in state.errors]
        self.objects, self.avg_conf = state.objects, state.avg_conf


def _bucket(status: str) -> str:
    return "running" if status == "retrying" else status


def new_job(event: JobCreated) -> tuple[JobRow, dict[str, JobSceneRow]]:
    """The job's row and one row per scene, all queued."""
    scene_ids = list(dict.fromkeys(event.scene_ids))
    row = JobRow(
        job_id=event.job_id,
        dataset_id=event.dataset_id,
        status="queued",
        total=len(scene_ids),
        queued=len(scene_ids),
        running=0,
        ok=0,
        partial=0,
        failed=0,
        stages=msgspec.structs.asdict(event.stages),
        resize_max_px=event.resize_max_px,
        created_by=event.created_by,
        created_at=event.at,
        updated_at=event.at,
        org_id=event.org,
    )
    if not scene_ids:
        row.status = "succeeded"
        row.finished_at = event.at
    return row, {
        sid: JobSceneRow(job_id=event.job_id, scene_id=sid, org_id=event.org) for sid in scene_ids
    }


def apply_job_scene(job: JobRow, scene: JobSceneRow, event: EventBase) -> bool:
    """Fold a scene event into its job-scene row and the job's counts; True if changed.

    Transitions are those of :func:`modomo.domain.fold.apply_scene`, so duplicated and
    stale events change nothing here either.
    """
    before = scene.state()
    after = apply_scene(before, event)
    if isinstance(event, StageEvent) and event.attempt == after.attempt and not after.terminal:
        scene.stage_ms[STAGE_OF[type(event)]] = event.duration_ms
    if after is before:
        return False
    old, new = _bucket(before.status), _bucket(after.status)
    if old != new:
        setattr(job, old, getattr(job, old) - 1)
        setattr(job, new, getattr(job, new) + 1)
    scene.take(after)
    if after.attempt > 0 and scene.started_at is None:
        scene.started_at = event.at
    if after.attempt > 0 and job.started_at is None:
        job.started_at = event.at
    scene.finished_at = event.at if after.terminal else None
    job.status = job_status(
        ok=job.ok,
        partial=job.partial,
        failed=job.failed,
        total=job.total,
        started=job.started_at is not None,
    )
    job.finished_at = event.at if job.status in ("succeeded", "partial", "failed") else None
    job.updated_at = event.at
    return True
