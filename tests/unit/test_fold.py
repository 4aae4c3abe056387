"""Properties and examples of folding scene and job state (modomo.domain.fold)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modomo.domain.events import (
    STAGE_OF,
    AttemptError,
    DatasetCreated,
    DepthEstimated,
    EventBase,
    JobCompleted,
    JobCreated,
    MasksSegmented,
    MaterialsClassified,
    ModelRef,
    ObjectsDetected,
    ObjectsLabelled,
    PaletteExtracted,
    ReviewSubmitted,
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
    WorkerWarming,
)
from modomo.domain.fold import (
    TERMINAL,
    JobState,
    JobSummary,
    SceneState,
    apply_scene,
    fold_job,
)
from modomo.domain.stages import STAGES, Stage

JOB = "job-1"
OTHER_JOB = "job-2"
MAX_ATTEMPTS = 3

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- building events -------------------------------------------------------------------------

STAGE_RESULTS: dict[type[StageEvent], dict[str, Any]] = {
    SceneClassified: {"scene_type": "kitchen", "confidence": 0.9},
    StylesClassified: {"styles": ()},
    ObjectsDetected: {"objects": ()},
    MasksSegmented: {"masks": ()},
    ObjectsLabelled: {"labels": ()},
    DepthEstimated: {"depth_key": "depth.png"},
    MaterialsClassified: {"objects": ()},
    SceneCaptioned: {"caption": "a room"},
    PaletteExtracted: {"colours": ()},
}
STAGE_CLASSES: tuple[type[StageEvent], ...] = tuple(
    sorted(STAGE_RESULTS, key=lambda cls: STAGES.index(STAGE_OF[cls]))
)


def test_stage_results_cover_every_stage_event() -> None:
    assert set(STAGE_RESULTS) == set(STAGE_OF)
    assert [STAGE_OF[cls] for cls in STAGE_CLASSES] == list(STAGES)


def stage_event(
    cls: type[StageEvent], scene_id: str, attempt: int, job_id: str = JOB
) -> StageEvent:
    """A finished-stage event with a minimal result."""
    return cls(
        job_id=job_id,
        scene_id=scene_id,
        attempt=attempt,
        model=ModelRef(id="m"),
        **STAGE_RESULTS[cls],
    )


def created(scene_ids: Sequence[str], job_id: str = JOB) -> JobCreated:
    return JobCreated(job_id=job_id, dataset_id="ds", scene_ids=tuple(scene_ids))


def error_text(scene_id: str, attempt: int) -> str:
    return f"{scene_id}: attempt {attempt} broke"


def rejob(event: EventBase, job_id: str) -> EventBase:
    """The same event, for another job."""
    return msgspec.structs.replace(event, job_id=job_id)


# --- generating histories like the workers write them ----------------------------------------


@st.composite
def scene_history(
    draw: st.DrawFn,
    scene_id: str,
    *,
    max_requeues: int = 1,
    allow_unfinished: bool = True,
) -> list[EventBase]:
    """One scene's events in the order a worker fleet appends them.

    Each delivery starts, reports some stages, then retries, completes or fails; the third
    delivery of a cycle may be dead-lettered, and a failed scene may be requeued for a new
    cycle of attempts. With ``allow_unfinished`` the history may be cut anywhere.
    """
    events: list[EventBase] = []
    if draw(st.booleans()):
        events.append(SceneQueued(job_id=JOB, scene_id=scene_id, entry_id="1-0"))
    attempt = 0
    requeues = 0
    while True:
        last = attempt + MAX_ATTEMPTS
        errors: list[AttemptError] = []
        failed = False
        while attempt < last:
            attempt += 1
            events.append(SceneStarted(job_id=JOB, scene_id=scene_id, attempt=attempt))
            stages = draw(st.lists(st.sampled_from(STAGE_CLASSES), unique=True, max_size=4))
            for cls in sorted(stages, key=STAGE_CLASSES.index):
                events.append(stage_event(cls, scene_id, attempt))
            final = attempt == last
            outcome = draw(
                st.sampled_from(
                    ["ok", "partial", "fail", "dead"]
                    if final
                    else ["ok", "partial", "fail", "retry"]
                )
            )
            error = error_text(scene_id, attempt)
            errors.append(AttemptError(attempt=attempt, error=error))
            if outcome == "retry":
                events.append(
                    SceneFailed(
                        job_id=JOB, scene_id=scene_id, attempt=attempt, error=error, will_retry=True
                    )
                )
                continue
            if outcome in ("ok", "partial"):
                events.append(
                    SceneCompleted(
                        job_id=JOB,
                        scene_id=scene_id,
                        attempt=attempt,
                        status="ok" if outcome == "ok" else "partial",
                        objects=attempt * 10,
                        avg_conf=attempt / 10,
                        failed_stages=("depth",) if outcome == "partial" else (),
                    )
                )
                break
            # "fail" (not retryable) or "dead" (out of deliveries): the worker writes the
            # failure, and the dead-letterer may follow with the whole error history.
            if outcome == "fail" or draw(st.booleans()):
                events.append(
                    SceneFailed(job_id=JOB, scene_id=scene_id, attempt=attempt, error=error)
                )
            if outcome == "dead" or draw(st.booleans()):
                events.append(
                    SceneDeadLettered(
                        job_id=JOB, scene_id=scene_id, attempt=attempt, errors=tuple(errors)
                    )
                )
            failed = True
            break
        if not failed or requeues >= max_requeues or not draw(st.booleans()):
            break
        requeues += 1
        events.append(SceneRequeued(job_id=JOB, scene_id=scene_id, prior_attempts=attempt))
    if allow_unfinished:
        cut = draw(st.one_of(st.just(len(events)), st.integers(0, len(events))))
        events = events[:cut]
    return events


class Job(NamedTuple):
    """A JobCreated and the separate histories of its scenes."""

    created: JobCreated
    histories: list[list[EventBase]]


@st.composite
def jobs(
    draw: st.DrawFn,
    *,
    min_scenes: int = 1,
    max_scenes: int = 5,
    max_requeues: int = 1,
    allow_unfinished: bool = True,
) -> Job:
    count = draw(st.integers(min_scenes, max_scenes))
    scene_ids = [f"scene-{i}" for i in range(count)]
    histories = [
        draw(scene_history(scene_id, max_requeues=max_requeues, allow_unfinished=allow_unfinished))
        for scene_id in scene_ids
    ]
    if draw(st.booleans()):
        # Job-level chatter that belongs to no scene.
        histories.append([WorkerWarming(job_id=JOB, worker=f"w{i}") for i in range(2)])
    return Job(created(scene_ids), histories)


@st.composite
def interleavings(draw: st.DrawFn, histories: Sequence[Sequence[EventBase]]) -> list[EventBase]:
    """A merge of ``histories`` that keeps each one's own order."""
    slots = [index for index, history in enumerate(histories) for _ in history]
    order = draw(st.permutations(slots))
    cursors = [iter(history) for history in histories]
    return [next(cursors[index]) for index in order]


@st.composite
def job_logs(draw: st.DrawFn, /, **job_options: Any) -> tuple[Job, list[EventBase]]:
    """A job and one interleaving of its events, starting with its JobCreated."""
    job = draw(jobs(**job_options))
    return job, [job.created, *draw(interleavings(job.histories))]


# --- an independent model of one well-ordered scene history ----------------------------------


class Expected(NamedTuple):
    status: str
    attempt: int
    stages: frozenset[Stage]
    errors: tuple[tuple[int, str], ...]
    objects: int
    avg_conf: float


def expected_scene(history: Iterable[EventBase]) -> Expected:
    """What a scene's state should be after its own history, read naively in order."""
    status, attempt, stages = "queued", 0, set[Stage]()
    errors: dict[int, str] = {}
    objects, avg_conf = 0, 0.0
    for event in history:
        if isinstance(event, SceneStarted):
            status, attempt, stages = "running", event.attempt, set()
        elif isinstance(event, StageEvent):
            stages.add(STAGE_OF[type(event)])
        elif isinstance(event, SceneFailed):
            errors.setdefault(event.attempt, event.error)
            status = "retrying" if event.will_retry else "failed"
        elif isinstance(event, SceneCompleted):
            status, objects, avg_conf = event.status, event.objects, event.avg_conf
        elif isinstance(event, SceneDeadLettered):
            status = "failed"
            for error in event.errors:
                errors.setdefault(error.attempt, error.error)
        elif isinstance(event, SceneRequeued):
            status, attempt, stages = "queued", event.prior_attempts, set()
    return Expected(
        status, attempt, frozenset(stages), tuple(sorted(errors.items())), objects, avg_conf
    )


def observed(state: SceneState) -> Expected:
    return Expected(
        state.status, state.attempt, state.stages, state.errors, state.objects, state.avg_conf
    )


def folded(events: Iterable[EventBase]) -> JobState:
    state = fold_job(events)
    assert state is not None
    return state


def snapshot(state: JobState) -> tuple[JobSummary, dict[str, SceneState], JobCompleted | None]:
    """Everything observable about a folded job."""
    return state.summary(), dict(state.scenes), state.completed


# --- properties ------------------------------------------------------------------------------


@PROPERTY
@given(log=job_logs())
def test_fold_agrees_with_a_naive_reading_of_each_history(
    log: tuple[Job, list[EventBase]],
) -> None:
    job, events = log
    state = folded(events)
    assert list(state.scenes) == list(job.created.scene_ids)
    for scene_id, history in zip(job.created.scene_ids, job.histories, strict=False):
        assert observed(state.scenes[scene_id]) == expected_scene(history), scene_id


@PROPERTY
@given(log=job_logs())
def test_counts_add_up_after_every_prefix(log: tuple[Job, list[EventBase]]) -> None:
    """(a) No count exceeds the total and the buckets always partition the scenes."""
    job, events = log
    state = JobState(job.created)
    total = len(job.created.scene_ids)
    for event in [None, *events[1:]]:
        if event is not None:
            state.apply(event)
        summary = state.summary()
        counts = (summary.queued, summary.running, summary.ok, summary.partial, summary.failed)
        assert summary.total == total
        assert all(0 <= count <= total for count in counts)
        assert sum(counts) == total
        assert 0.0 <= summary.progress <= 1.0


@PROPERTY
@given(job=jobs(), data=st.data())
def test_state_does_not_depend_on_interleaving(job: Job, data: st.DataObject) -> None:
    """(b) Scenes' events may interleave in any order: same scenes, same summary."""
    first = data.draw(interleavings(job.histories))
    second = data.draw(interleavings(job.histories))
    one = folded([job.created, *first])
    two = folded([job.created, *second])
    assert one.summary() == two.summary()
    assert one.scenes == two.scenes


@PROPERTY
@given(log=job_logs(max_requeues=2), data=st.data())
def test_duplicated_events_change_nothing(
    log: tuple[Job, list[EventBase]], data: st.DataObject
) -> None:
    """(c) At-least-once delivery: any event repeated anywhere after itself is a no-op."""
    _job, events = log
    if data.draw(st.booleans(), label="job completed"):
        summary = folded(events).summary()
        events = [*events, JobCompleted(job_id=JOB, status="partial", ok=summary.ok)]
    duplicated = list(events)
    for _ in range(data.draw(st.integers(1, 5), label="duplicates")):
        # Index into the growing list, so duplicates of duplicates happen too.
        source = data.draw(st.integers(0, len(duplicated) - 1), label="source")
        target = data.draw(st.integers(source + 1, len(duplicated)), label="target")
        duplicated.insert(target, duplicated[source])
    assert snapshot(folded(duplicated)) == snapshot(folded(events))


def with_duplicates(events: list[EventBase], data: st.DataObject, most: int = 5) -> list[EventBase]:
    """``events`` with up to ``most`` of them delivered again, each after its original."""
    duplicated = list(events)
    for _ in range(data.draw(st.integers(0, most), label="duplicates")):
        source = data.draw(st.integers(1, len(duplicated) - 1), label="source")
        target = data.draw(st.integers(source + 1, len(duplicated)), label="target")
        duplicated.insert(target, duplicated[source])
    return duplicated


@PROPERTY
@given(log=job_logs(max_requeues=2), data=st.data())
def test_outcomes_are_terminal_until_requeued(
    log: tuple[Job, list[EventBase]], data: st.DataObject
) -> None:
    """(d) Once ok/partial/failed, a scene's state only changes on a SceneRequeued for it."""
    job, events = log
    if len(events) > 1:
        events = with_duplicates(events, data)
    state = JobState(job.created)
    for event in events[1:]:
        before = dict(state.scenes)
        state.apply(event)
        for scene_id, previous in before.items():
            requeued = isinstance(event, SceneRequeued) and event.scene_id == scene_id
            if previous.status in TERMINAL and not requeued:
                assert state.scenes[scene_id] == previous


@PROPERTY
@given(
    stages=st.lists(st.sampled_from(STAGE_CLASSES), unique=True, max_size=3),
    retries_after=st.integers(0, MAX_ATTEMPTS - 1),
    outcome=st.sampled_from(["ok", "partial"]),
    via_failed=st.booleans(),
)
def test_requeue_after_dead_letter_reopens_the_scene(
    stages: list[type[StageEvent]], retries_after: int, outcome: str, via_failed: bool
) -> None:
    """(e) Requeue moves a dead scene back to queued; its new attempts then complete it."""
    scene = "s"
    events: list[EventBase] = [created([scene])]
    errors: list[AttemptError] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        error = error_text(scene, attempt)
        errors.append(AttemptError(attempt=attempt, error=error))
        events.append(SceneStarted(job_id=JOB, scene_id=scene, attempt=attempt))
        events.extend(stage_event(cls, scene, attempt) for cls in stages)
        events.append(
            SceneFailed(
                job_id=JOB,
                scene_id=scene,
                attempt=attempt,
                error=error,
                will_retry=attempt < MAX_ATTEMPTS,
            )
        )
    if not via_failed:
        events.pop()  # the dead-letterer alone reports the last failure
    events.append(
        SceneDeadLettered(job_id=JOB, scene_id=scene, attempt=MAX_ATTEMPTS, errors=tuple(errors))
    )
    state = folded(events)
    dead = state.scenes[scene]
    assert dead.status == "failed"
    assert state.summary().status == "failed"
    assert dead.errors == tuple((e.attempt, e.error) for e in errors)

    assert state.apply(SceneRequeued(job_id=JOB, scene_id=scene, prior_attempts=MAX_ATTEMPTS))
    requeued = state.scenes[scene]
    assert requeued.status == "queued"
    assert requeued.attempt == MAX_ATTEMPTS
    assert requeued.stages == frozenset()
    assert requeued.errors == dead.errors
    assert state.summary().queued == 1

    # Old attempts' events replayed now are stale.
    for event in events[1:]:
        assert not state.apply(event)

    attempt = MAX_ATTEMPTS
    for _ in range(retries_after):
        attempt += 1
        assert state.apply(SceneStarted(job_id=JOB, scene_id=scene, attempt=attempt))
        assert state.apply(
            SceneFailed(
                job_id=JOB,
                scene_id=scene,
                attempt=attempt,
                error=error_text(scene, attempt),
                will_retry=True,
            )
        )
    attempt += 1
    assert state.apply(SceneStarted(job_id=JOB, scene_id=scene, attempt=attempt))
    assert state.scenes[scene].status == "running"
    assert state.apply(
        SceneCompleted(job_id=JOB, scene_id=scene, attempt=attempt, status=outcome)  # type: ignore[arg-type]
    )
    final = state.scenes[scene]
    assert final.status == outcome
    assert final.attempt == attempt
    assert len(final.errors) == MAX_ATTEMPTS + retries_after
    assert state.summary().status == ("succeeded" if outcome == "ok" else "partial")


@PROPERTY
@given(log=job_logs(), data=st.data())
def test_foreign_events_change_nothing(
    log: tuple[Job, list[EventBase]], data: st.DataObject
) -> None:
    """(f) Other jobs' events and events about scenes outside the job are ignored."""
    job, events = log
    scene_events = [e for e in events[1:] if hasattr(e, "scene_id")]
    foreign: list[EventBase] = [
        rejob(created(["scene-0", "intruder"]), OTHER_JOB),
        JobCompleted(job_id=OTHER_JOB, status="failed"),
        DatasetCreated(dataset_id="ds", name="other"),
        ReviewSubmitted(review_id="r", scene_id="scene-0", verdict="reject"),
        SceneStarted(job_id=JOB, scene_id="intruder", attempt=1),
        SceneCompleted(job_id=JOB, scene_id="intruder", attempt=1),
        SceneFailed(job_id=JOB, scene_id="intruder", attempt=1, error="x"),
        SceneRequeued(job_id=JOB, scene_id="intruder", prior_attempts=3),
        *(rejob(event, OTHER_JOB) for event in scene_events),
        *(msgspec.structs.replace(event, scene_id="intruder") for event in scene_events),
    ]
    chosen = data.draw(st.lists(st.sampled_from(foreign), max_size=12), label="foreign")
    mixed = list(events)
    for event in chosen:
        mixed.insert(data.draw(st.integers(1, len(mixed)), label="position"), event)

    expected = folded(events)
    state = JobState(job.created)
    for event in mixed[1:]:
        changed = state.apply(event)
        if any(event is foreign_event for foreign_event in chosen):
            assert not changed
    assert snapshot(state) == snapshot(expected)
    assert "intruder" not in state.scenes


@PROPERTY
@given(log=job_logs(), data=st.data())
def test_fold_job_ignores_events_before_job_created(
    log: tuple[Job, list[EventBase]], data: st.DataObject
) -> None:
    """(g) Whatever comes before the JobCreated is not folded; no JobCreated gives None."""
    _job, events = log
    early = data.draw(st.lists(st.sampled_from(events[1:] or [events[0]]), max_size=10))
    early = [event for event in early if not isinstance(event, JobCreated)]
    early.append(JobCompleted(job_id=JOB, status="succeeded"))
    assert snapshot(folded([*early, *events])) == snapshot(folded(events))
    assert fold_job(early) is None
    assert fold_job(events[1:]) is None


@PROPERTY
@given(log=job_logs(min_scenes=0, max_scenes=6))
def test_progress_and_status_rules(log: tuple[Job, list[EventBase]]) -> None:
    """(h) progress is done/total; the status follows from the scenes' outcomes."""
    _job, events = log
    state = folded(events)
    summary = state.summary()
    statuses = [scene.status for scene in state.scenes.values()]
    assert summary.done == summary.ok + summary.partial + summary.failed
    assert summary.ok == statuses.count("ok")
    assert summary.partial == statuses.count("partial")
    assert summary.failed == statuses.count("failed")
    assert summary.queued == statuses.count("queued")
    assert summary.running == statuses.count("running") + statuses.count("retrying")
    if summary.total:
        assert summary.progress == summary.done / summary.total
    else:
        assert summary.progress == 1.0
    if all(status == "ok" for status in statuses):
        assert summary.status == "succeeded"
    elif all(status == "failed" for status in statuses):
        assert summary.status == "failed"
    elif all(status in TERMINAL for status in statuses):
        assert summary.status == "partial"
    elif all(scene.attempt == 0 for scene in state.scenes.values()):
        assert summary.status == "queued"
    else:
        assert summary.status == "running"


SOUP_IDS: dict[str, Any] = {"job_id": st.just(JOB), "scene_id": st.just("s")}
SOUP_ATTEMPT = st.integers(1, 4)
SOUP_EVENT: st.SearchStrategy[EventBase] = st.one_of(
    st.builds(SceneStarted, **SOUP_IDS, attempt=SOUP_ATTEMPT),
    st.builds(
        lambda cls, attempt: stage_event(cls, "s", attempt),
        st.sampled_from(STAGE_CLASSES),
        SOUP_ATTEMPT,
    ),
    st.builds(
        SceneCompleted,
        **SOUP_IDS,
        attempt=SOUP_ATTEMPT,
        status=st.sampled_from(["ok", "partial"]),
        objects=st.integers(0, 3),
    ),
    st.builds(
        SceneFailed,
        **SOUP_IDS,
        attempt=SOUP_ATTEMPT,
        error=st.sampled_from(["a", "b"]),
        will_retry=st.booleans(),
    ),
    st.builds(
        SceneDeadLettered,
        **SOUP_IDS,
        attempt=SOUP_ATTEMPT,
        errors=st.lists(
            st.builds(AttemptError, attempt=SOUP_ATTEMPT, error=st.sampled_from(["c", "d"])),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(SceneQueued, **SOUP_IDS),
)
"""Scene events in no particular order, as a confused or replayed log might hold them."""


def fold_scene(events: Iterable[EventBase]) -> SceneState:
    state = SceneState(scene_id="s")
    for event in events:
        state = apply_scene(state, event)
    return state


@settings(max_examples=300, deadline=None)
@given(events=st.lists(SOUP_EVENT, max_size=12), data=st.data())
def test_duplicates_are_harmless_even_out_of_order(
    events: list[EventBase], data: st.DataObject
) -> None:
    """Without requeues, even a disordered history ignores repeats of its events."""
    if not events:
        return
    source = data.draw(st.integers(0, len(events) - 1))
    target = data.draw(st.integers(source + 1, len(events)))
    duplicated = [*events[:target], events[source], *events[target:]]
    assert fold_scene(duplicated) == fold_scene(events)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(SOUP_EVENT, max_size=12))
def test_scene_position_never_goes_back(events: list[EventBase]) -> None:
    """Without requeues, (attempt, phase) only grows, and a terminal state is final.

    The one change a terminal state takes is a dead letter adding the errors of attempts
    that ended without a scene_failed; nothing else about it moves.
    """
    state = SceneState(scene_id="s")
    for event in events:
        after = apply_scene(state, event)
        assert (after.attempt, after.phase) >= (state.attempt, state.phase)
        if state.terminal:
            assert msgspec.structs.replace(after, errors=state.errors) == state
            assert set(state.errors) <= set(after.errors)
            if after is not state:
                assert isinstance(event, SceneDeadLettered)
        state = after


# --- examples --------------------------------------------------------------------------------


def test_fails_twice_then_succeeds() -> None:
    scene = "s"
    events: list[EventBase] = [created([scene])]
    for attempt in (1, 2):
        events += [
            SceneStarted(job_id=JOB, scene_id=scene, attempt=attempt),
            stage_event(SceneClassified, scene, attempt),
            SceneFailed(
                job_id=JOB, scene_id=scene, attempt=attempt, error=f"e{attempt}", will_retry=True
            ),
        ]
    events += [
        SceneStarted(job_id=JOB, scene_id=scene, attempt=3),
        stage_event(SceneClassified, scene, 3),
        stage_event(ObjectsDetected, scene, 3),
        SceneCompleted(job_id=JOB, scene_id=scene, attempt=3, objects=4, avg_conf=0.75),
    ]
    state = folded(events)
    final = state.scenes[scene]
    assert final.status == "ok"
    assert final.attempt == 3
    assert final.errors == ((1, "e1"), (2, "e2"))
    assert final.stages == {"scene", "detect"}
    assert (final.objects, final.avg_conf) == (4, 0.75)
    assert state.summary() == JobSummary(
        job_id=JOB, status="succeeded", total=1, queued=0, running=0, ok=1, partial=0, failed=0
    )


def test_stale_events_from_an_earlier_attempt_are_ignored() -> None:
    scene = "s"
    state = folded(
        [
            created([scene]),
            SceneStarted(job_id=JOB, scene_id=scene, attempt=1),
            SceneFailed(job_id=JOB, scene_id=scene, attempt=1, error="lost", will_retry=True),
            SceneStarted(job_id=JOB, scene_id=scene, attempt=2),
            stage_event(DepthEstimated, scene, 2),
        ]
    )
    before = state.scenes[scene]
    stale: list[EventBase] = [
        SceneStarted(job_id=JOB, scene_id=scene, attempt=1),
        stage_event(SceneCaptioned, scene, 1),
        SceneCompleted(job_id=JOB, scene_id=scene, attempt=1, objects=9),
        SceneFailed(job_id=JOB, scene_id=scene, attempt=1, error="late"),
        SceneDeadLettered(job_id=JOB, scene_id=scene, attempt=1),
    ]
    for event in stale:
        assert not state.apply(event)
    assert state.scenes[scene] == before
    assert before.status == "running"
    assert before.attempt == 2
    assert before.stages == {"depth"}
    assert before.errors == ((1, "lost"),)


def test_stage_events_collect_per_attempt() -> None:
    scene = "s"
    state = SceneState(scene_id=scene)
    state = apply_scene(state, SceneStarted(job_id=JOB, scene_id=scene, attempt=1))
    state = apply_scene(state, stage_event(SceneClassified, scene, 1))
    state = apply_scene(state, stage_event(StylesClassified, scene, 1))
    assert state.stages == {"scene", "style"}
    again = apply_scene(state, stage_event(StylesClassified, scene, 1))
    assert again is state
    # A stage event of the next attempt starts it, even if its SceneStarted is missing.
    state = apply_scene(state, stage_event(DepthEstimated, scene, 2))
    assert (state.status, state.attempt, state.stages) == ("running", 2, frozenset({"depth"}))


def test_dead_letter_merges_its_errors_in_attempt_order() -> None:
    scene = "s"
    state = SceneState(scene_id=scene)
    state = apply_scene(
        state, SceneFailed(job_id=JOB, scene_id=scene, attempt=2, error="two", will_retry=True)
    )
    state = apply_scene(
        state,
        SceneDeadLettered(
            job_id=JOB,
            scene_id=scene,
            attempt=3,
            errors=(
                AttemptError(attempt=3, error="three"),
                AttemptError(attempt=1, error="one"),
                AttemptError(attempt=2, error="other two"),
            ),
        ),
    )
    assert state.status == "failed"
    assert state.errors == ((1, "one"), (2, "two"), (3, "three"))


def test_requeue_is_ignored_unless_the_scene_failed_at_or_before_prior_attempts() -> None:
    scene = "s"
    running = apply_scene(
        SceneState(scene_id=scene), SceneStarted(job_id=JOB, scene_id=scene, attempt=1)
    )
    requeue = SceneRequeued(job_id=JOB, scene_id=scene, prior_attempts=3)
    assert apply_scene(running, requeue) is running
    done = apply_scene(running, SceneCompleted(job_id=JOB, scene_id=scene, attempt=1))
    assert apply_scene(done, requeue) is done
    failed = apply_scene(
        SceneState(scene_id=scene), SceneFailed(job_id=JOB, scene_id=scene, attempt=4, error="x")
    )
    assert apply_scene(failed, requeue) is failed
    reopened = apply_scene(failed, msgspec.structs.replace(requeue, prior_attempts=4))
    assert (reopened.status, reopened.attempt) == ("queued", 4)


def test_job_created_with_duplicate_scene_ids_counts_each_once() -> None:
    state = folded([created(["a", "b", "a"])])
    assert state.scene_ids == ("a", "b")
    assert state.summary().total == 2
    assert state.summary().status == "queued"


def test_empty_job_is_succeeded_with_full_progress() -> None:
    summary = folded([created([])]).summary()
    assert summary.status == "succeeded"
    assert summary.total == 0
    assert summary.progress == 1.0


def test_summary_status_examples() -> None:
    def status_after(*events: EventBase) -> str:
        return folded([created(["a", "b"]), *events]).summary().status

    ok_a = SceneCompleted(job_id=JOB, scene_id="a")
    ok_b = SceneCompleted(job_id=JOB, scene_id="b")
    partial_b = SceneCompleted(job_id=JOB, scene_id="b", status="partial")
    failed_a = SceneFailed(job_id=JOB, scene_id="a", error="x")
    failed_b = SceneFailed(job_id=JOB, scene_id="b", error="x")
    assert status_after() == "queued"
    assert status_after(SceneQueued(job_id=JOB, scene_id="a")) == "queued"
    assert status_after(SceneStarted(job_id=JOB, scene_id="a")) == "running"
    assert status_after(ok_a) == "running"
    assert status_after(ok_a, ok_b) == "succeeded"
    assert status_after(ok_a, partial_b) == "partial"
    assert status_after(failed_a, ok_b) == "partial"
    assert status_after(failed_a, failed_b) == "failed"
    summary = folded([created(["a", "b"]), ok_a]).summary()
    assert summary.progress == 0.5


def test_job_completed_is_kept_once() -> None:
    first = JobCompleted(job_id=JOB, status="succeeded", ok=1)
    second = JobCompleted(job_id=JOB, status="failed", failed=1)
    state = JobState(created(["a"]))
    assert state.apply(first)
    assert not state.apply(second)
    assert not state.apply(rejob(second, OTHER_JOB))
    assert state.completed is first


def test_apply_reports_whether_anything_changed() -> None:
    state = JobState(created(["a"]))
    start = SceneStarted(job_id=JOB, scene_id="a")
    assert state.apply(start)
    assert not state.apply(start)
    assert not state.apply(created(["a"]))
    assert not state.apply(WorkerWarming(job_id=JOB))
    assert not state.apply(SceneQueued(job_id=JOB, scene_id="a"))


def test_fold_job_without_job_created_is_none() -> None:
    assert fold_job([]) is None
    assert fold_job([SceneStarted(job_id=JOB, scene_id="a")]) is None


def test_fold_job_uses_the_first_job_created() -> None:
    state = folded([created(["a"]), created(["a", "b"]), rejob(created(["c"]), OTHER_JOB)])
    assert state.job_id == JOB
    assert state.scene_ids == ("a",)


@pytest.mark.parametrize("status", ["ok", "partial", "failed"])
def test_terminal_property(status: str) -> None:
    assert SceneState(scene_id="s", status=status).terminal  # type: ignore[arg-type]


@pytest.mark.parametrize("status", ["queued", "running", "retrying"])
def test_non_terminal_property(status: str) -> None:
    assert not SceneState(scene_id="s", status=status).terminal  # type: ignore[arg-type]


def test_dead_letter_after_final_failure_keeps_errors_of_silent_attempts() -> None:
    """A worker that died in attempt 1 reported nothing; the dead letter still says why."""
    events: list[EventBase] = [
        SceneStarted(job_id="j", scene_id="s", attempt=1),
        SceneStarted(job_id="j", scene_id="s", attempt=2),
        SceneFailed(job_id="j", scene_id="s", attempt=2, error="bad", will_retry=False),
        SceneDeadLettered(
            job_id="j",
            scene_id="s",
            attempt=2,
            errors=(AttemptError(attempt=1, error="lost"), AttemptError(attempt=2, error="bad")),
        ),
    ]
    state = SceneState(scene_id="s")
    for event in events:
        state = apply_scene(state, event)
    assert state.status == "failed"
    assert state.errors == ((1, "lost"), (2, "bad"))
