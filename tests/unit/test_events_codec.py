"""Round-trips, upcasting and error reporting of the event codec (modomo.domain.codec)."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any, NamedTuple

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modomo.domain.codec import (
    CODEC,
    UPCASTERS,
    EventCodec,
    EventDecodeError,
    Upcaster,
    current_version,
)
from modomo.domain.events import (
    EVENT_TYPES,
    ApiKeyCreated,
    ApiKeyRevoked,
    AttemptError,
    Colour,
    DatasetCreated,
    DepthEstimated,
    Detection,
    Embedding,
    EvaluationRecorded,
    EventBase,
    ExportCompleted,
    ExportFailed,
    ExportRequested,
    ExportStarted,
    JobCompleted,
    JobCreated,
    JobEvent,
    Label,
    Mask,
    MasksSegmented,
    MaterialsClassified,
    ModelRef,
    ObjectCorrected,
    ObjectMaterials,
    ObjectsDetected,
    ObjectsLabelled,
    OrgQuotaSet,
    PaletteExtracted,
    RegisteredScene,
    ReviewSubmitted,
    SceneCaptioned,
    SceneClassified,
    SceneCompleted,
    SceneDeadLettered,
    SceneFailed,
    SceneQueued,
    SceneRequeued,
    ScenesRegistered,
    SceneStarted,
    Scored,
    StylesClassified,
    WorkerWarming,
    job_of,
)
from modomo.domain.stages import STAGES, StageFlags

# --- value strategies ------------------------------------------------------------------------

Strategy = st.SearchStrategy[Any]

TEXT: Strategy = st.text()
INT: Strategy = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FLOAT: Strategy = st.floats(allow_nan=False, allow_infinity=False)
BOOL: Strategy = st.booleans()
UTC_DATETIME: Strategy = st.datetimes(timezones=st.just(UTC))
BBOX: Strategy = st.tuples(FLOAT, FLOAT, FLOAT, FLOAT)
STAGE: Strategy = st.sampled_from(STAGES)


def tuples_of(strategy: Strategy, max_size: int = 4) -> Strategy:
    """A variable-length tuple of ``strategy`` values."""
    return st.lists(strategy, max_size=max_size).map(tuple)


MODEL_REF: Strategy = st.builds(ModelRef, id=TEXT, profile=TEXT, digest=TEXT)
SCORED: Strategy = st.builds(Scored, code=TEXT, score=FLOAT)
DETECTION: Strategy = st.builds(
    Detection, object_id=TEXT, category=TEXT, confidence=FLOAT, bbox=BBOX, label=TEXT
)
MASK: Strategy = st.builds(Mask, object_id=TEXT, mask_key=TEXT, thumb_key=TEXT, area=FLOAT)
LABEL: Strategy = st.builds(
    Label, object_id=TEXT, category=TEXT, confidence=FLOAT, bbox=BBOX, phrase=TEXT
)
EMBEDDING: Strategy = st.builds(Embedding, f16=st.binary(max_size=64))
OBJECT_MATERIALS: Strategy = st.builds(
    ObjectMaterials,
    object_id=TEXT,
    materials=tuples_of(SCORED),
    embedding=st.none() | EMBEDDING,
)
COLOUR: Strategy = st.builds(Colour, hex=TEXT, lab=st.tuples(FLOAT, FLOAT, FLOAT), share=FLOAT)
REGISTERED_SCENE: Strategy = st.builds(
    RegisteredScene,
    scene_id=TEXT,
    r2_key_original=TEXT,
    content_type=TEXT,
    size_bytes=INT,
    filename=TEXT,
    etag=TEXT,
)
FAILURE: Strategy = st.sampled_from(["input", "transient"])
ATTEMPT_ERROR: Strategy = st.builds(
    AttemptError, attempt=INT, error=TEXT, consumer=TEXT, at=UTC_DATETIME, failure=FAILURE
)
STAGE_FLAGS: Strategy = st.builds(StageFlags, **dict.fromkeys(STAGES, BOOL))
ATTR_VALUE: Strategy = st.one_of(TEXT, INT, FLOAT, BOOL)


# --- one strategy per event type -------------------------------------------------------------


class EventSpec(NamedTuple):
    """An event class and a strategy for every one of its fields."""

    cls: type[EventBase]
    fields: dict[str, Strategy]

    def strategy(self) -> Strategy:
        return st.builds(self.cls, **self.fields)


def spec(cls: type[EventBase], **fields: Strategy) -> EventSpec:
    """Strategies for ``cls``: the base fields (at the class's current version) plus ``fields``."""
    base = {"event_id": TEXT, "at": UTC_DATETIME, "v": st.just(current_version(cls))}
    return EventSpec(cls, {**base, **fields})


def job_fields() -> dict[str, Strategy]:
    return {"job_id": TEXT}


def scene_fields() -> dict[str, Strategy]:
    return {**job_fields(), "scene_id": TEXT, "attempt": INT}


def stage_fields() -> dict[str, Strategy]:
    return {**scene_fields(), "model": MODEL_REF, "duration_ms": FLOAT}


SPECS: dict[str, EventSpec] = {
    "dataset_created": spec(
        DatasetCreated, dataset_id=TEXT, name=TEXT, description=TEXT, created_by=TEXT, org=TEXT
    ),
    "scenes_registered": spec(
        ScenesRegistered, dataset_id=TEXT, scenes=tuples_of(REGISTERED_SCENE), org=TEXT
    ),
    "job_created": spec(
        JobCreated,
        **job_fields(),
        dataset_id=TEXT,
        scene_ids=tuples_of(TEXT, max_size=8),
        stages=STAGE_FLAGS,
        resize_max_px=INT,
        created_by=TEXT,
        org=TEXT,
    ),
    "scene_queued": spec(SceneQueued, **job_fields(), scene_id=TEXT, entry_id=TEXT),
    "scene_requeued": spec(
        SceneRequeued, **job_fields(), scene_id=TEXT, prior_attempts=INT, entry_id=TEXT
    ),
    "warming": spec(WorkerWarming, **job_fields(), worker=TEXT),
    "scene_start": spec(SceneStarted, **scene_fields(), worker=TEXT),
    "scene_classified": spec(
        SceneClassified,
        **stage_fields(),
        scene_type=TEXT,
        confidence=FLOAT,
        alternatives=tuples_of(SCORED),
        embedding=st.none() | EMBEDDING,
    ),
    "styles_classified": spec(StylesClassified, **stage_fields(), styles=tuples_of(SCORED)),
    "objects_detected": spec(
        ObjectsDetected, **stage_fields(), objects=tuples_of(DETECTION), width=INT, height=INT
    ),
    "masks_segmented": spec(MasksSegmented, **stage_fields(), masks=tuples_of(MASK)),
    "objects_labelled": spec(ObjectsLabelled, **stage_fields(), labels=tuples_of(LABEL)),
    "depth_estimated": spec(
        DepthEstimated, **stage_fields(), depth_key=TEXT, near=FLOAT, far=FLOAT
    ),
    "materials_classified": spec(
        MaterialsClassified, **stage_fields(), objects=tuples_of(OBJECT_MATERIALS)
    ),
    "scene_captioned": spec(SceneCaptioned, **stage_fields(), caption=TEXT),
    "palette_extracted": spec(PaletteExtracted, **stage_fields(), colours=tuples_of(COLOUR)),
    "scene_done": spec(
        SceneCompleted,
        **scene_fields(),
        status=st.sampled_from(["ok", "partial"]),
        objects=INT,
        avg_conf=FLOAT,
        failed_stages=tuples_of(STAGE),
        duration_ms=FLOAT,
    ),
    "scene_failed": spec(
        SceneFailed,
        **scene_fields(),
        error=TEXT,
        will_retry=BOOL,
        stage=TEXT,
        failure=FAILURE,
    ),
    "scene_dead": spec(
        SceneDeadLettered,
        **scene_fields(),
        errors=tuples_of(ATTEMPT_ERROR),
        dead_entry_id=TEXT,
        reason=TEXT,
    ),
    "job_done": spec(
        JobCompleted,
        **job_fields(),
        status=st.sampled_from(["succeeded", "partial", "failed"]),
        ok=INT,
        partial=INT,
        failed=INT,
    ),
    "object_corrected": spec(
        ObjectCorrected,
        object_id=TEXT,
        scene_id=TEXT,
        category=st.none() | TEXT,
        materials=st.none() | tuples_of(TEXT),
        bbox=st.none() | BBOX,
        attrs=st.none() | st.dictionaries(TEXT, ATTR_VALUE, max_size=4),
        corrected_by=TEXT,
        org=TEXT,
        dataset_id=TEXT,
    ),
    "review_submitted": spec(
        ReviewSubmitted,
        review_id=TEXT,
        scene_id=TEXT,
        object_id=st.none() | TEXT,
        verdict=st.sampled_from(["approve", "reject", "fix"]),
        note=TEXT,
        reviewer=TEXT,
        org=TEXT,
        dataset_id=TEXT,
    ),
    "export_requested": spec(
        ExportRequested,
        export_id=TEXT,
        dataset_id=TEXT,
        format=st.sampled_from(["coco", "yolo", "yolo-seg", "parquet"]),
        as_of=TEXT,
        reviewed_only=BOOL,
        requested_by=TEXT,
        org=TEXT,
    ),
    "export_started": spec(
        ExportStarted, export_id=TEXT, position=TEXT, scenes=INT, attempt=INT, worker=TEXT
    ),
    "export_completed": spec(
        ExportCompleted,
        export_id=TEXT,
        position=TEXT,
        key=TEXT,
        size_bytes=INT,
        sha256=TEXT,
        scenes=INT,
        objects=INT,
    ),
    "export_failed": spec(ExportFailed, export_id=TEXT, error=TEXT, attempt=INT, will_retry=BOOL),
    "evaluation_recorded": spec(
        EvaluationRecorded,
        evaluation_id=TEXT,
        golden=TEXT,
        golden_sha256=TEXT,
        job_id=TEXT,
        models=st.dictionaries(TEXT, TEXT, max_size=3),
        profile=TEXT,
        scenes=INT,
        missing=INT,
        metrics=st.dictionaries(TEXT, FLOAT, max_size=3),
        per_class=st.dictionaries(TEXT, st.dictionaries(TEXT, FLOAT, max_size=3), max_size=2),
        previous_id=TEXT,
        deltas=st.dictionaries(TEXT, FLOAT, max_size=3),
        regressions=tuples_of(TEXT),
        notes=tuples_of(TEXT),
        evaluated_by=TEXT,
        org=TEXT,
    ),
    "org_quota_set": spec(OrgQuotaSet, org=TEXT, scenes_per_day=INT, set_by=TEXT),
    "api_key_created": spec(
        ApiKeyCreated, org=TEXT, key_id=TEXT, role=TEXT, name=TEXT, created_by=TEXT
    ),
    "api_key_revoked": spec(ApiKeyRevoked, org=TEXT, key_id=TEXT, revoked_by=TEXT),
}
"""Tag → strategy; must name every type in EVENT_TYPES and every field of each."""

ALL_TAGS = sorted(EVENT_TYPES)
NON_JOB_TAGS = {
    "dataset_created",
    "scenes_registered",
    "object_corrected",
    "review_submitted",
    "export_requested",
    "export_started",
    "export_completed",
    "export_failed",
    "evaluation_recorded",
    "org_quota_set",
    "api_key_created",
    "api_key_revoked",
}


def events_of(tag: str) -> Strategy:
    """Events of the type tagged ``tag``; a KeyError for a type with no strategy yet."""
    return SPECS[tag].strategy()


# --- coverage of the strategy table ----------------------------------------------------------


def test_strategy_table_covers_event_types_exactly() -> None:
    assert set(SPECS) == set(EVENT_TYPES)
    for tag, event_spec in SPECS.items():
        assert event_spec.cls is EVENT_TYPES[tag], tag


@pytest.mark.parametrize("tag", ALL_TAGS)
def test_strategy_sets_every_field(tag: str) -> None:
    """A field added to an event class must get a strategy here too."""
    event_spec = SPECS[tag]
    assert set(event_spec.fields) == set(EVENT_TYPES[tag].__struct_fields__)


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ALL_TAGS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_encode_decode_round_trip(tag: str, data: st.DataObject) -> None:
    event = data.draw(events_of(tag))
    encoded = CODEC.encode(event)
    assert json.loads(encoded)["type"] == tag
    decoded = CODEC.decode(encoded)
    assert type(decoded) is EVENT_TYPES[tag]
    assert decoded == event
    assert CODEC.encode(decoded) == encoded


@settings(max_examples=50, deadline=None)
@given(event=events_of("scene_failed"))
def test_decode_accepts_str_as_well_as_bytes(event: SceneFailed) -> None:
    assert CODEC.decode(CODEC.encode(event).decode()) == event


def test_module_level_encode_decode_use_the_shared_codec() -> None:
    from modomo.domain import codec

    event = SceneStarted(job_id="j", scene_id="s", attempt=2, worker="w")
    assert codec.decode(codec.encode(event)) == event


# --- versions and upcasting ------------------------------------------------------------------


def test_current_version_is_the_v_default() -> None:
    assert all(current_version(cls) >= 1 for cls in EVENT_TYPES.values())
    assert current_version(SceneFailed) == SceneFailed(job_id="j", scene_id="s", error="e").v
    assert current_version(JobCompleted) == JobCompleted(job_id="j", status="failed").v


def test_current_version_of_a_struct_without_v_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="no version field"):
        current_version(ModelRef)  # type: ignore[arg-type]


def test_every_shipped_version_has_its_upcasters() -> None:
    """Every event ever written must still replay: v1..current-1 each need an upcaster."""
    for tag, cls in EVENT_TYPES.items():
        for version in range(1, current_version(cls)):
            assert (tag, version) in UPCASTERS, f"{tag} v{version} has no upcaster"


def codec_at(tag: str, version: int, upcasters: dict[tuple[str, int], Upcaster]) -> EventCodec:
    """A codec that believes ``tag``'s current schema version is ``version``."""
    codec = EventCodec(upcasters=upcasters)
    codec._versions[tag] = version
    return codec


def old_scene_failed(**changes: Any) -> bytes:
    """A scene_failed payload at v1 whose ``error`` field was still called ``reason``."""
    raw = json.loads(CODEC.encode(SceneFailed(job_id="j", scene_id="s", attempt=2, error="boom")))
    raw["reason"] = raw.pop("error")
    raw.update(changes)
    return json.dumps(raw).encode()


def rename_reason(raw: dict[str, Any]) -> dict[str, Any]:
    raw["error"] = raw.pop("reason")
    return raw


def test_upcaster_rewrites_an_old_shape() -> None:
    seen: list[dict[str, Any]] = []

    def upcast(raw: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(raw))
        return rename_reason(raw)

    codec = codec_at("scene_failed", 2, {("scene_failed", 1): upcast})
    event = codec.decode(old_scene_failed())
    assert isinstance(event, SceneFailed)
    assert event.error == "boom"
    assert (event.job_id, event.scene_id, event.attempt) == ("j", "s", 2)
    assert event.v == 2
    assert len(seen) == 1
    assert seen[0]["v"] == 1


def test_upcaster_runs_even_when_the_old_payload_fits_the_current_class() -> None:
    """An old version that still decodes must not take the fast path unchanged."""

    def shout(raw: dict[str, Any]) -> dict[str, Any]:
        raw["error"] = raw["error"].upper()
        return raw

    codec = codec_at("scene_failed", 2, {("scene_failed", 1): shout})
    payload = CODEC.encode(SceneFailed(job_id="j", scene_id="s", error="boom"))
    event = codec.decode(payload)
    assert isinstance(event, SceneFailed)
    assert event.error == "BOOM"
    assert event.v == 2


def test_upcasters_chain_one_version_at_a_time() -> None:
    calls: list[int] = []

    def step(version: int) -> Upcaster:
        def upcast(raw: dict[str, Any]) -> dict[str, Any]:
            assert raw["v"] == version
            calls.append(version)
            raw["error"] = f"{raw['error']}>{version + 1}"
            return raw

        return upcast

    codec = codec_at(
        "scene_failed", 3, {("scene_failed", 1): step(1), ("scene_failed", 2): step(2)}
    )
    payload = CODEC.encode(SceneFailed(job_id="j", scene_id="s", error="e"))
    event = codec.decode(payload)
    assert calls == [1, 2]
    assert isinstance(event, SceneFailed)
    assert event.error == "e>2>3"
    assert event.v == 3


def test_current_version_payload_skips_upcasters() -> None:
    def never(raw: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("upcaster called for a current payload")

    codec = codec_at("scene_failed", 2, {("scene_failed", 1): never})
    payload = CODEC.encode(SceneFailed(job_id="j", scene_id="s", error="e", v=2))
    event = codec.decode(payload)
    assert isinstance(event, SceneFailed)
    assert event.v == 2


def test_missing_upcaster_is_reported() -> None:
    codec = codec_at("scene_failed", 3, {("scene_failed", 1): rename_reason})
    with pytest.raises(EventDecodeError, match="no upcaster") as info:
        codec.decode(old_scene_failed())
    assert "v2" in str(info.value)


def test_missing_first_upcaster_is_reported() -> None:
    codec = codec_at("scene_failed", 2, {})
    with pytest.raises(EventDecodeError, match="no upcaster"):
        codec.decode(CODEC.encode(SceneFailed(job_id="j", scene_id="s", error="e")))


def test_upcaster_yielding_an_invalid_shape_is_reported() -> None:
    codec = codec_at("scene_failed", 2, {("scene_failed", 1): lambda raw: raw})
    with pytest.raises(EventDecodeError, match="scene_failed after upcasting"):
        codec.decode(old_scene_failed())


def test_newer_version_than_the_code_is_refused() -> None:
    payload = CODEC.encode(SceneFailed(job_id="j", scene_id="s", error="e", v=2))
    with pytest.raises(EventDecodeError, match="newer") as info:
        CODEC.decode(payload)
    assert "scene_failed" in str(info.value)


def test_newer_version_in_an_unknown_shape_is_refused_as_newer() -> None:
    with pytest.raises(EventDecodeError, match="newer"):
        CODEC.decode(old_scene_failed(v=5))


@pytest.mark.parametrize("version", [0, -1, "1", 1.5, None])
def test_bad_schema_version_is_refused(version: object) -> None:
    with pytest.raises(EventDecodeError, match="bad schema version"):
        CODEC.decode(old_scene_failed(v=version))


# --- malformed input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type": "no_such_event", "job_id": "j"}',
        b'{"job_id": "j"}',
        b'{"type": 7}',
    ],
)
def test_unknown_event_type_is_refused(payload: bytes) -> None:
    with pytest.raises(EventDecodeError, match="unknown event type"):
        CODEC.decode(payload)


@pytest.mark.parametrize("payload", [b"", b"{", b"not json", b'{"type": "scene_start",}'])
def test_invalid_json_is_refused(payload: bytes) -> None:
    with pytest.raises(EventDecodeError):
        CODEC.decode(payload)


@pytest.mark.parametrize("payload", [b"[]", b"42", b'"scene_start"', b"null"])
def test_json_that_is_not_an_object_is_refused(payload: bytes) -> None:
    with pytest.raises(EventDecodeError, match="not a JSON object"):
        CODEC.decode(payload)


@pytest.mark.parametrize(
    ("event", "field", "bad"),
    [
        (SceneFailed(job_id="j", scene_id="s", error="e"), "attempt", "three"),
        (SceneFailed(job_id="j", scene_id="s", error="e"), "will_retry", "yes"),
        (SceneCompleted(job_id="j", scene_id="s"), "status", "great"),
        (SceneCompleted(job_id="j", scene_id="s"), "failed_stages", ["depht"]),
        (JobCreated(job_id="j", dataset_id="d", scene_ids=("a",)), "scene_ids", "a"),
        (JobCreated(job_id="j", dataset_id="d", scene_ids=("a",)), "stages", {"depht": True}),
        (ReviewSubmitted(review_id="r", scene_id="s", verdict="fix"), "verdict", "maybe"),
        (DatasetCreated(dataset_id="d", name="n"), "at", "yesterday"),
    ],
)
def test_wrong_field_type_names_the_event_type(event: EventBase, field: str, bad: object) -> None:
    raw = json.loads(CODEC.encode(event))
    raw[field] = bad
    tag = raw["type"]
    with pytest.raises(EventDecodeError) as info:
        CODEC.decode(json.dumps(raw))
    assert str(info.value).startswith(f"{tag}:")


def test_missing_required_field_names_the_event_type() -> None:
    raw = json.loads(CODEC.encode(SceneFailed(job_id="j", scene_id="s", error="e")))
    del raw["error"]
    with pytest.raises(EventDecodeError, match=r"^scene_failed:.*error"):
        CODEC.decode(json.dumps(raw))


def test_event_decode_error_is_a_value_error() -> None:
    assert issubclass(EventDecodeError, ValueError)


def test_non_finite_floats_do_not_round_trip() -> None:
    """msgspec writes NaN as null, so the decoder refuses it rather than inventing a value."""
    payload = CODEC.encode(SceneCompleted(job_id="j", scene_id="s", avg_conf=float("nan")))
    with pytest.raises(EventDecodeError, match="scene_done"):
        CODEC.decode(payload)


# --- job_of ----------------------------------------------------------------------------------


def test_non_job_tags_are_exactly_the_non_job_events() -> None:
    assert {tag for tag, cls in EVENT_TYPES.items() if not issubclass(cls, JobEvent)} == (
        NON_JOB_TAGS
    )


@pytest.mark.parametrize("tag", ALL_TAGS)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_job_of(tag: str, data: st.DataObject) -> None:
    event = data.draw(events_of(tag))
    if tag in NON_JOB_TAGS:
        assert job_of(event) is None
    else:
        assert isinstance(event, JobEvent)
        assert job_of(event) == event.job_id


def test_job_of_examples() -> None:
    assert job_of(SceneQueued(job_id="job-7", scene_id="s")) == "job-7"
    assert job_of(JobCompleted(job_id="job-8", status="failed")) == "job-8"
    assert job_of(DatasetCreated(dataset_id="d", name="n")) is None
    assert job_of(ObjectCorrected(object_id="o", scene_id="s")) is None
    assert job_of(ReviewSubmitted(review_id="r", scene_id="s", verdict="approve")) is None
    assert job_of(ScenesRegistered(dataset_id="d", scenes=())) is None


def test_default_event_fields() -> None:
    first = SceneStarted(job_id="j", scene_id="s")
    second = SceneStarted(job_id="j", scene_id="s")
    assert first.event_id != second.event_id
    assert first.at.tzinfo is not None
    assert first.at.utcoffset() is not None
    assert first.at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert first.v == 1
    assert first.attempt == 1
    assert msgspec.structs.asdict(first)["worker"] == ""
