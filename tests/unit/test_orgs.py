"""Organisations in the pure domain: events with and without an ``org`` decode to the right
organisation, and folding a log keeps every row in its organisation (hypothesis)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from modomo.domain.codec import CODEC
from modomo.domain.events import (
    EVENT_TYPES,
    EventBase,
    JobCreated,
    JobEvent,
    RegisteredScene,
    SceneEvent,
    SceneQueued,
    SceneRequeued,
    ScenesRegistered,
    org_of,
)
from modomo.domain.orgs import DEFAULT_ORG, ORG_PATTERN, valid_org
from modomo.domain.views import (
    SceneView,
    Unapplicable,
    apply_job_scene,
    apply_scene_view,
    new_job,
    register,
)
from modomo.synthetic.log import synthetic_log
from tests.unit.test_events_codec import events_of

ORG_TAGS = sorted(tag for tag, cls in EVENT_TYPES.items() if "org" in cls.__struct_fields__)
ORGS = st.from_regex(ORG_PATTERN, fullmatch=True).filter(lambda o: "\n" not in o)


def test_every_event_that_creates_or_changes_data_records_its_org() -> None:
    assert set(ORG_TAGS) == {
        "dataset_created",
        "scenes_registered",
        "job_created",
        "object_corrected",
        "review_submitted",
        "export_requested",
        "evaluation_recorded",
        "org_quota_set",
        "api_key_created",
        "api_key_revoked",
    }
    # A worker's results name their job or scene, which belongs to one organisation.
    assert not any(issubclass(EVENT_TYPES[t], JobEvent) for t in ORG_TAGS if t != "job_created")


@given(data=st.data(), tag=st.sampled_from(ORG_TAGS), org=ORGS)
@settings(max_examples=300, deadline=None)
def test_an_event_with_an_org_keeps_it_and_one_without_decodes_as_the_default(
    data: st.DataObject, tag: str, org: str
) -> None:
    event = msgspec.structs.replace(data.draw(events_of(tag)), org=org)  # type: ignore[type-var]
    assert CODEC.decode(CODEC.encode(event)) == event
    assert org_of(event) == org
    # As written before organisations existed: the same event, without the field.
    old = msgspec.json.decode(CODEC.encode(event))
    del old["org"]
    decoded = CODEC.decode(msgspec.json.encode(old))
    assert org_of(decoded) == DEFAULT_ORG
    assert decoded == msgspec.structs.replace(event, org=DEFAULT_ORG)  # type: ignore[type-var]


@given(data=st.data(), tag=st.sampled_from(sorted(set(EVENT_TYPES) - set(ORG_TAGS))))
@settings(max_examples=100, deadline=None)
def test_events_that_record_no_org_say_so(data: st.DataObject, tag: str) -> None:
    assert org_of(data.draw(events_of(tag))) is None


@given(org=ORGS)
def test_org_ids_of_the_pattern_are_valid(org: str) -> None:
    assert valid_org(org)


@given(text=st.text(max_size=80))
def test_anything_else_is_not_an_org_id(text: str) -> None:
    digits = "0123456789"  # ASCII only: str.isdigit() also takes "²"
    bad = (
        not text
        or len(text) > 63
        or any(not (c in digits or c in "_-" or "a" <= c <= "z") for c in text)
        or not (text[0] in digits or "a" <= text[0] <= "z")
    )
    assert valid_org(text) is not bad


def _fold(events: list[EventBase]) -> tuple[dict[str, SceneView], dict[str, str]]:
    """Scenes and jobs folded as the projectors fold them: (scene views, job → org)."""
    views: dict[str, SceneView] = {}
    jobs: dict[str, str] = {}
    job_rows = {}
    scene_rows = {}
    for event in events:
        if isinstance(event, ScenesRegistered):
            for scene in event.scenes:
                views[scene.scene_id] = register(
                    views.get(scene.scene_id), event.dataset_id, scene, event.at, event.org
                )
        elif isinstance(event, JobCreated):
            job_rows[event.job_id], rows = new_job(event)
            scene_rows.update({(event.job_id, s): r for s, r in rows.items()})
            jobs[event.job_id] = event.org
        if isinstance(event, SceneEvent | SceneQueued | SceneRequeued):
            view = views.get(event.scene_id)
            if view is not None:
                with contextlib.suppress(Unapplicable):  # the projector parks these
                    apply_scene_view(view, event)
            row = scene_rows.get((event.job_id, event.scene_id))
            if row is not None:
                apply_job_scene(job_rows[event.job_id], row, event)
    for job_id, job in job_rows.items():
        assert job.org_id == jobs[job_id]
    for (job_id, _), row in scene_rows.items():
        assert row.org_id == jobs[job_id]
    return views, jobs


@given(seed=st.integers(0, 10_000), org=ORGS, scenes=st.integers(1, 6))
@settings(max_examples=40, deadline=None)
def test_folding_a_log_keeps_every_row_in_its_org(seed: int, org: str, scenes: int) -> None:
    events = [
        msgspec.structs.replace(e, org=org) if "org" in e.__struct_fields__ else e  # type: ignore[type-var]
        for e in synthetic_log(seed, scenes, failure_rate=0.3)
    ]
    views, jobs = _fold(events)
    assert views
    assert {v.row.org_id for v in views.values()} == {org}
    assert set(jobs.values()) == {org}
    # The same log from before organisations folds into the default organisation.
    old = [CODEC.decode(_without_org(CODEC.encode(e))) for e in events]
    views, _ = _fold(old)
    assert {v.row.org_id for v in views.values()} == {DEFAULT_ORG}


def _without_org(raw: bytes) -> bytes:
    fields = msgspec.json.decode(raw)
    fields.pop("org", None)
    return msgspec.json.encode(fields)


@given(first=ORGS, second=ORGS)
def test_a_scene_registered_again_never_changes_hands(first: str, second: str) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    scene = RegisteredScene(scene_id="s", r2_key_original="k")
    view = register(None, "d1", scene, at, first)
    view = register(view, "d2", scene, at, second)
    assert view.row.org_id == first
