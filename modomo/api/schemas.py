"""Request and response bodies: msgspec Structs, validated by Litestar, in the OpenAPI.

Inbound bodies forbid unknown fields, so a typo is a 400 naming the field rather than a
silently ignored value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from modomo.domain.stages import StageFlags
from modomo.domain.taxonomies import FURNITURE, MATERIALS, SCENE_TYPES, STYLES, Taxonomy
from modomo.domain.text import find_problem


def code_pattern(taxonomy: Taxonomy) -> str:
    """A pattern matching exactly the codes of ``taxonomy`` (so OpenAPI lists them)."""
    return "^(" + "|".join(taxonomy.codes()) + ")$"


CATEGORY_PATTERN = code_pattern(FURNITURE)
MATERIAL_PATTERN = code_pattern(MATERIALS)
SCENE_TYPE_PATTERN = code_pattern(SCENE_TYPES)
STYLE_PATTERN = code_pattern(STYLES)
Category = Annotated[str, Meta(pattern=CATEGORY_PATTERN)]
Material = Annotated[str, Meta(pattern=MATERIAL_PATTERN)]

NO_NUL = "^[^\x00]*$"
"""PostgreSQL's text and jsonb cannot hold NUL, so no text field accepts one."""
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Text = Annotated[str, Meta(max_length=2000, pattern=NO_NUL)]
Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
ImageType = Literal["image/jpeg", "image/png", "image/webp"]
Fraction = Annotated[float, Meta(ge=0.0, le=1.0)]
AttrKey = Annotated[str, Meta(min_length=1, max_length=64)]


class In(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies.

    Every string in a body, dict keys included, must be text PostgreSQL can store (no NUL,
    no lone surrogate): anything else would enter the log and never reach a read model.
    msgspec runs this check as it decodes each body and reports a failure as a 400 naming
    the field (``$.files[0]`` plus ``filename: contains a NUL character``).
    """

    def __post_init__(self) -> None:
        found = find_problem(self)
        if found is not None:
            raise ValueError(f"{found[0]}: {found[1]}")


class DatasetIn(In, kw_only=True):
    name: Name
    description: Text = ""


class DatasetOut(msgspec.Struct, kw_only=True):
    dataset_id: str
    name: str
    description: str
    created_by: str
    created_at: datetime
    scene_count: int = 0


class UploadFile(In, kw_only=True):
    filename: Annotated[str, Meta(min_length=1, max_length=255, pattern=NO_NUL)]
    content_type: ImageType
    size_bytes: Annotated[int, Meta(ge=1)]


class PresignIn(In, kw_only=True):
    files: Annotated[list[UploadFile], Meta(min_length=1, max_length=500)]


class Upload(msgspec.Struct, kw_only=True):
    scene_id: str
    filename: str
    key: str
    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime


class PresignOut(msgspec.Struct, kw_only=True):
    uploads: list[Upload]


class SceneRef(In, kw_only=True):
    scene_id: Id
    filename: Annotated[str, Meta(max_length=255, pattern=NO_NUL)] = ""


class RegisterIn(In, kw_only=True):
    scenes: Annotated[list[SceneRef], Meta(min_length=1, max_length=1000)]


class DuplicateWarning(msgspec.Struct, kw_only=True):
    """A scene registered now whose bytes were already registered (same ETag)."""

    scene_id: str
    duplicate_of: str
    dataset_id: str
    message: str


class RegisterOut(msgspec.Struct, kw_only=True):
    registered: list[str]
    already_registered: list[str]
    event_id: str | None
    warnings: list[DuplicateWarning] = msgspec.field(default_factory=list)
    """Uploads that duplicate a registered scene: registered all the same, since the same
    photo may rightly belong to two datasets."""


class JobIn(In, kw_only=True):
    dataset_id: Id
    scene_ids: Annotated[list[Id], Meta(min_length=1, max_length=100_000)] | None = None
    stages: StageFlags = msgspec.field(default_factory=StageFlags)
    resize_max_px: Annotated[int, Meta(ge=256, le=4096)] = 1280


class StageTiming(msgspec.Struct, kw_only=True):
    stage: str
    count: int
    p50_ms: float
    p95_ms: float


class JobOut(msgspec.Struct, kw_only=True):
    job_id: str
    dataset_id: str
    status: str
    total: int
    queued: int
    running: int
    ok: int
    partial: int
    failed: int
    progress: float
    stages: dict[str, bool]
    resize_max_px: int
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stage_timings: list[StageTiming] | None = None


class MaterialOut(msgspec.Struct, kw_only=True):
    code: str
    score: float
    model: str


class ObjectOut(msgspec.Struct, kw_only=True):
    object_id: str
    scene_id: str
    category: str
    confidence: float
    bbox: list[float]
    label: str
    source: str
    model: str
    mask_key: str | None
    thumb_key: str | None
    area: float | None
    attrs: dict[str, Any]
    corrected_by: str | None
    corrected_at: datetime | None
    materials: list[MaterialOut]
    mask_url: str | None = None
    thumb_url: str | None = None
    detect_category: str | None = None
    """What the detector (YOLO) called it."""
    label_category: str | None = None
    """What the open-vocabulary labeller (GroundingDINO) called it."""
    material_margin: float | None = None
    """Top material score minus the runner-up's."""
    dataset_id: str | None = None


class StyleOut(msgspec.Struct, kw_only=True):
    code: str
    score: float
    model: str


class SceneSummary(msgspec.Struct, kw_only=True):
    scene_id: str
    dataset_id: str
    status: str
    scene_type: str | None
    scene_type_conf: float | None
    caption: str | None
    object_count: int
    avg_conf: float
    updated_at: datetime | None
    image_url: str | None = None
    """Where to fetch the scene's photo (for a grid of thumbnails)."""


class ModelRefOut(msgspec.Struct, kw_only=True):
    """Which model produced a stage's result."""

    id: str
    profile: str
    """``real`` (pulled weights) or ``tiny`` / ``full-random`` (random weights)."""
    digest: str = ""
    """``sha256:<hex>`` of the weights (empty where none were recorded)."""


class SceneOut(msgspec.Struct, kw_only=True):
    scene_id: str
    dataset_id: str
    status: str
    last_job_id: str | None
    r2_key_original: str
    content_type: str
    size_bytes: int
    filename: str
    registered_at: datetime
    scene_type: str | None
    scene_type_conf: float | None
    width: int | None
    height: int | None
    depth_key: str | None
    depth_near: float | None
    depth_far: float | None
    caption: str | None
    palette: list[dict[str, Any]] | None
    object_count: int
    avg_conf: float
    models: dict[str, str | None]
    model_refs: dict[str, ModelRefOut] = msgspec.field(default_factory=dict)
    """Per stage with a result: the model's id, profile and weights digest."""
    styles: list[StyleOut]
    objects: list[ObjectOut]
    original_url: str
    depth_url: str | None
    updated_at: datetime | None


class ObjectPatch(In, kw_only=True):
    """Fields left out (or null) stay as they are; a patch that changes nothing is a no-op.
    ``bbox`` is two opposite corners as fractions of the image, in either order."""

    category: Category | None = None
    materials: Annotated[list[Material], Meta(max_length=20)] | None = None
    bbox: tuple[Fraction, Fraction, Fraction, Fraction] | None = None
    attrs: (
        Annotated[
            dict[
                Annotated[AttrKey, Meta(pattern=NO_NUL)],
                Annotated[str, Meta(max_length=2000, pattern=NO_NUL)] | int | float | bool,
            ],
            Meta(max_length=50),
        ]
        | None
    ) = None


class ReviewIn(In, kw_only=True):
    scene_id: Id
    object_id: Id | None = None
    verdict: Literal["approve", "reject", "fix"]
    note: Text = ""


class ReviewOut(msgspec.Struct, kw_only=True):
    review_id: str
    scene_id: str
    object_id: str | None
    verdict: str
    note: str
    reviewer: str
    created_at: datetime


class Accepted(msgspec.Struct, kw_only=True):
    """A write recorded in the log whose projection is not visible yet."""

    event_id: str
    log_id: str
    detail: str = "recorded; the read model will show it shortly"


class DatasetPage(msgspec.Struct, kw_only=True):
    items: list[DatasetOut]
    next_cursor: str | None


class JobPage(msgspec.Struct, kw_only=True):
    items: list[JobOut]
    next_cursor: str | None


class ScenePage(msgspec.Struct, kw_only=True):
    items: list[SceneSummary]
    next_cursor: str | None


class Health(msgspec.Struct, kw_only=True):
    ok: bool
    status: Literal["ok", "degraded"] = "ok"
    """``degraded`` (with a 503) while Redis or PostgreSQL does not answer."""
    redis: str
    postgres: str
