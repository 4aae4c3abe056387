"""The event catalogue: every fact Modomo records, as one tagged union of msgspec Structs.

Every event carries ``event_id`` (a UUID string), ``at`` (UTC time) and ``v`` (its schema
version), and is encoded as JSON with its tag in the ``type`` field. The tags of the
worker's progress events are the ones the original specification shows on the SSE stream
(``warming``, ``scene_start``, ``scene_done``, ``scene_failed``).

Schema evolution (see :mod:`modomo.domain.codec`): a new field always gets a default, no
field is ever retyped, renamed or removed, and a tag is never reused. A change that cannot
follow those rules bumps the class's ``v`` default and registers an upcaster that rewrites
the previous version's JSON into the new shape, so every event ever written still replays.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import msgspec

from modomo.domain.failures import FailureClass
from modomo.domain.orgs import DEFAULT_ORG
from modomo.domain.stages import Stage, StageFlags


def new_id() -> str:
    """A fresh random identifier (UUID4, canonical text form)."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    """The current time, UTC, to the microsecond."""
    return datetime.now(UTC)


class EventBase(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    """Fields every event has; never instantiated on its own.

    ``gc=False`` (inherited): events hold no reference cycles, so the cyclic garbage
    collector need not track them; a projector holding thousands of decoded events
    otherwise spends a third of its time in collections.
    """

    event_id: str = msgspec.field(default_factory=new_id)
    at: datetime = msgspec.field(default_factory=utc_now)
    v: int = 1


class JobEvent(EventBase, frozen=True, kw_only=True):
    """An event about one job: appended to the log and to the job's own stream."""

    job_id: str


class SceneEvent(JobEvent, frozen=True, kw_only=True):
    """Something that happened to one scene within one job, in one delivery attempt."""

    scene_id: str
    attempt: int = 1


# --- results carried by stage events -------------------------------------------------------


class ModelRef(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Which model produced a result: its id and the profile it was loaded with."""

    id: str
    profile: str = "real"
    digest: str = ""
    """``sha256:<hex>`` of the weights the model was loaded from (empty: not recorded)."""


class Scored(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A taxonomy code with the model's score for it."""

    code: str
    score: float


BBox = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` as fractions of the image's width and height."""


class Detection(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One object found by the detector."""

    object_id: str
    category: str
    confidence: float
    bbox: BBox
    label: str = ""
    """The detector's own class name, before mapping to the furniture taxonomy."""


class Mask(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One object's segmentation mask and thumbnail in object storage."""

    object_id: str
    mask_key: str
    thumb_key: str
    area: float
    """Share of the image the mask covers, 0..1."""


class Label(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An open-vocabulary category for an object (existing or newly found)."""

    object_id: str
    category: str
    confidence: float
    bbox: BBox
    phrase: str = ""


class Embedding(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An L2-normalised image embedding (CLIP) of the stage's model.

    Kept as little-endian float16 bytes, which JSON carries as base64: a 768-dimension
    vector is 2 KB on the log instead of about 8 KB of decimal text, and float16 keeps
    cosine similarities to about three decimals, which is what ranking needs.
    """

    f16: bytes

    @property
    def dim(self) -> int:
        return len(self.f16) // 2

    def floats(self) -> tuple[float, ...]:
        """The vector's components."""
        return struct.unpack(f"<{self.dim}e", self.f16[: self.dim * 2])

    @classmethod
    def of(cls, values: Sequence[float]) -> Embedding:
        """The embedding of ``values`` (normalised by the caller)."""
        return cls(f16=struct.pack(f"<{len(values)}e", *values))


class ObjectMaterials(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The materials scored for one object's crop."""

    object_id: str
    materials: tuple[Scored, ...]
    embedding: Embedding | None = None
    """The crop's image embedding, from the same forward pass that scored the materials."""


class Colour(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One palette colour and the share of the image it covers."""

    hex: str
    lab: tuple[float, float, float]
    share: float


# --- datasets and jobs -----------------------------------------------------------------------


class DatasetCreated(EventBase, frozen=True, kw_only=True, tag="dataset_created"):
    dataset_id: str
    name: str
    description: str = ""
    created_by: str = ""
    org: str = DEFAULT_ORG
    """The organisation the data belongs to (events from before organisations: the default)."""


class RegisteredScene(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A scene image that exists in object storage and belongs to a dataset."""

    scene_id: str
    r2_key_original: str
    content_type: str = "image/jpeg"
    size_bytes: int = 0
    filename: str = ""
    etag: str = ""
    """The object store's ETag of the upload (an MD5 of the bytes for a single PUT): two
    scenes with the same ETag hold the same photo, and the worker refuses an original whose
    ETag changed since (overwritten after registration)."""


class ScenesRegistered(EventBase, frozen=True, kw_only=True, tag="scenes_registered"):
    dataset_id: str
    scenes: tuple[RegisteredScene, ...]
    org: str = DEFAULT_ORG
    """The organisation the data belongs to (events from before organisations: the default)."""


class JobCreated(JobEvent, frozen=True, kw_only=True, tag="job_created"):
    dataset_id: str
    scene_ids: tuple[str, ...]
    stages: StageFlags = msgspec.field(default_factory=StageFlags)
    resize_max_px: int = 1280
    created_by: str = ""
    org: str = DEFAULT_ORG
    """The organisation the data belongs to (events from before organisations: the default)."""


class SceneQueued(JobEvent, frozen=True, kw_only=True, tag="scene_queued"):
    """A scene task was put on the queue (``entry_id`` is its queue entry)."""

    scene_id: str
    entry_id: str = ""


class SceneRequeued(JobEvent, frozen=True, kw_only=True, tag="scene_requeued"):
    """An operator re-enqueued a dead-lettered scene; it leaves its failed state."""

    scene_id: str
    prior_attempts: int
    entry_id: str = ""


class WorkerWarming(JobEvent, frozen=True, kw_only=True, tag="warming"):
    """A worker is loading its models before its first scene of this job."""

    worker: str = ""


class SceneStarted(SceneEvent, frozen=True, kw_only=True, tag="scene_start"):
    worker: str = ""


# --- one event per pipeline stage ------------------------------------------------------------


class StageEvent(SceneEvent, frozen=True, kw_only=True):
    """A pipeline stage finished for a scene; subclasses carry its result."""

    model: ModelRef
    duration_ms: float = 0.0


class SceneClassified(StageEvent, frozen=True, kw_only=True, tag="scene_classified"):
    scene_type: str
    confidence: float
    alternatives: tuple[Scored, ...] = ()
    embedding: Embedding | None = None
    """The scene image's embedding, from the forward pass that classified it."""


class StylesClassified(StageEvent, frozen=True, kw_only=True, tag="styles_classified"):
    styles: tuple[Scored, ...]


class ObjectsDetected(StageEvent, frozen=True, kw_only=True, tag="objects_detected"):
    objects: tuple[Detection, ...]
    width: int = 0
    height: int = 0


class MasksSegmented(StageEvent, frozen=True, kw_only=True, tag="masks_segmented"):
    masks: tuple[Mask, ...]


class ObjectsLabelled(StageEvent, frozen=True, kw_only=True, tag="objects_labelled"):
    labels: tuple[Label, ...]


class DepthEstimated(StageEvent, frozen=True, kw_only=True, tag="depth_estimated"):
    depth_key: str
    near: float = 0.0
    far: float = 0.0


class MaterialsClassified(StageEvent, frozen=True, kw_only=True, tag="materials_classified"):
    objects: tuple[ObjectMaterials, ...]


class SceneCaptioned(StageEvent, frozen=True, kw_only=True, tag="scene_captioned"):
    caption: str


class PaletteExtracted(StageEvent, frozen=True, kw_only=True, tag="palette_extracted"):
    colours: tuple[Colour, ...]


STAGE_OF: dict[type[StageEvent], Stage] = {
    SceneClassified: "scene",
    StylesClassified: "style",
    ObjectsDetected: "detect",
    MasksSegmented: "segment",
    ObjectsLabelled: "label",
    DepthEstimated: "depth",
    MaterialsClassified: "material",
    SceneCaptioned: "caption",
    PaletteExtracted: "palette",
}
"""Which pipeline stage each stage event reports."""


# --- outcomes --------------------------------------------------------------------------------


class SceneCompleted(SceneEvent, frozen=True, kw_only=True, tag="scene_done"):
    """The pipeline ran to its end; ``partial`` when some stage failed and was skipped."""

    status: Literal["ok", "partial"] = "ok"
    objects: int = 0
    avg_conf: float = 0.0
    failed_stages: tuple[Stage, ...] = ()
    duration_ms: float = 0.0


class SceneFailed(SceneEvent, frozen=True, kw_only=True, tag="scene_failed"):
    """One attempt failed; ``will_retry`` says whether another delivery follows."""

    error: str
    will_retry: bool = False
    stage: str = ""
    failure: FailureClass = "transient"
    """``input``: the input can never be processed (final at once); ``transient``: retried
    while attempts remain (see :mod:`modomo.domain.failures`)."""


class AttemptError(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What went wrong in one delivery of a task."""

    attempt: int
    error: str
    consumer: str = ""
    at: datetime = msgspec.field(default_factory=utc_now)
    failure: FailureClass = "transient"


class SceneDeadLettered(SceneEvent, frozen=True, kw_only=True, tag="scene_dead"):
    """Every attempt failed; the task now sits in the dead stream."""

    errors: tuple[AttemptError, ...] = ()
    dead_entry_id: str = ""
    reason: str = ""
    """Why it went dead: ``input`` (at once) or ``attempts_exhausted``."""


JobStatus = Literal["queued", "running", "succeeded", "partial", "failed"]


class JobCompleted(JobEvent, frozen=True, kw_only=True, tag="job_done"):
    status: Literal["succeeded", "partial", "failed"]
    ok: int = 0
    partial: int = 0
    failed: int = 0


# --- review ----------------------------------------------------------------------------------


class ObjectCorrected(EventBase, frozen=True, kw_only=True, tag="object_corrected"):
    """A reviewer changed an object; fields left as ``None`` stay as they were."""

    object_id: str
    scene_id: str
    category: str | None = None
    materials: tuple[str, ...] | None = None
    bbox: BBox | None = None
    attrs: dict[str, str | int | float | bool] | None = None
    corrected_by: str = ""
    org: str = DEFAULT_ORG
    """The organisation the data belongs to (events from before organisations: the default)."""
    dataset_id: str = ""
    """The scene's dataset, so the audit trail can list it (empty in older events)."""


class ReviewSubmitted(EventBase, frozen=True, kw_only=True, tag="review_submitted"):
    review_id: str
    scene_id: str
    object_id: str | None = None
    verdict: Literal["approve", "reject", "fix"]
    note: str = ""
    reviewer: str = ""
    org: str = DEFAULT_ORG
    """The organisation the data belongs to (events from before organisations: the default)."""
    dataset_id: str = ""
    """The scene's dataset, so the audit trail can list it (empty in older events)."""


# --- dataset products: exports and evaluations ----------------------------------------------

ExportFormat = Literal["coco", "yolo", "yolo-seg", "parquet"]


class ExportRequested(EventBase, frozen=True, kw_only=True, tag="export_requested"):
    """Someone asked for a dataset's export; an export worker builds it."""

    export_id: str
    dataset_id: str
    format: ExportFormat
    as_of: str = ""
    """The log position asked for, as given (an entry id, an event id or a time); empty
    for the end of the log when the worker starts."""
    reviewed_only: bool = False
    requested_by: str = ""
    org: str = DEFAULT_ORG
    """The organisation the data belongs to (events from before organisations: the default)."""


class ExportStarted(EventBase, frozen=True, kw_only=True, tag="export_started"):
    """A worker resolved the export's log position and began building it."""

    export_id: str
    position: str
    scenes: int = 0
    attempt: int = 1
    worker: str = ""


class ExportCompleted(EventBase, frozen=True, kw_only=True, tag="export_completed"):
    """The export's archive is in object storage under ``key``."""

    export_id: str
    position: str
    key: str
    size_bytes: int
    sha256: str
    scenes: int = 0
    objects: int = 0


class ExportFailed(EventBase, frozen=True, kw_only=True, tag="export_failed"):
    """An attempt to build the export failed; ``will_retry`` says whether another follows."""

    export_id: str
    error: str
    attempt: int = 1
    will_retry: bool = False


class EvaluationRecorded(EventBase, frozen=True, kw_only=True, tag="evaluation_recorded"):
    """A job's results scored against a golden set (ground truth).

    ``metrics`` holds the overall scores by name, ``per_class`` the per-class ones by
    metric and then class code; classes the golden set lacks are left out rather than
    written as NaN. ``deltas`` is each metric's change from ``previous_id``, the previous
    evaluation of the same golden set (by ``golden_sha256``), and ``regressions`` names the
    metrics that got worse by more than the tolerance.
    """

    evaluation_id: str
    golden: str
    golden_sha256: str
    job_id: str
    models: dict[str, str] = msgspec.field(default_factory=dict)
    profile: str = ""
    scenes: int = 0
    missing: int = 0
    metrics: dict[str, float] = msgspec.field(default_factory=dict)
    per_class: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)
    previous_id: str = ""
    deltas: dict[str, float] = msgspec.field(default_factory=dict)
    regressions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    evaluated_by: str = ""
    org: str = DEFAULT_ORG
    """The organisation the data belongs to (events from before organisations: the default)."""


# --- organisations ---------------------------------------------------------------------------


class OrgQuotaSet(EventBase, frozen=True, kw_only=True, tag="org_quota_set"):
    """An organisation's admin set how many scenes its jobs may process per UTC day
    (0: no limit)."""

    org: str = DEFAULT_ORG
    scenes_per_day: int
    set_by: str = ""


class ApiKeyCreated(EventBase, frozen=True, kw_only=True, tag="api_key_created"):
    """An API key was made for an organisation (its secret is never on the log)."""

    org: str = DEFAULT_ORG
    key_id: str
    role: str
    name: str = ""
    created_by: str = ""


class ApiKeyRevoked(EventBase, frozen=True, kw_only=True, tag="api_key_revoked"):
    org: str = DEFAULT_ORG
    key_id: str
    revoked_by: str = ""


Event = (
    DatasetCreated
    | ScenesRegistered
    | JobCreated
    | SceneQueued
    | SceneRequeued
    | WorkerWarming
    | SceneStarted
    | SceneClassified
    | StylesClassified
    | ObjectsDetected
    | MasksSegmented
    | ObjectsLabelled
    | DepthEstimated
    | MaterialsClassified
    | SceneCaptioned
    | PaletteExtracted
    | SceneCompleted
    | SceneFailed
    | SceneDeadLettered
    | JobCompleted
    | ObjectCorrected
    | ReviewSubmitted
    | ExportRequested
    | ExportStarted
    | ExportCompleted
    | ExportFailed
    | EvaluationRecorded
    | OrgQuotaSet
    | ApiKeyCreated
    | ApiKeyRevoked
)
"""Every event type; the one union the log decoder is built for."""

EVENT_TYPES: dict[str, type[EventBase]] = {cls.__struct_config__.tag: cls for cls in Event.__args__}
"""Tag → class, for everything that dispatches on the ``type`` field."""


def org_of(event: EventBase) -> str | None:
    """The organisation an event records, if it records one (events about data they do not
    create, like a worker's stage results, belong to their job's or scene's org)."""
    org = getattr(event, "org", None)
    return org if isinstance(org, str) else None


def job_of(event: EventBase) -> str | None:
    """The job an event belongs to, if any: such events also go to the job's stream."""
    return event.job_id if isinstance(event, JobEvent) else None
