"""Pure folding: the state of a scene and of a job from their events.

Used by the projectors, by SSE consumers and by tests. No I/O, deterministic.

A scene's progress is ordered by ``(attempt, phase)``: an event moves the scene only when
its own ``(attempt, phase)`` is strictly greater than the scene's, so

- a duplicated event (at-least-once delivery) changes nothing,
- a stale event from an earlier attempt changes nothing,
- an outcome (``ok``, ``partial``, ``failed``) is terminal: nothing but an operator's
  :class:`~modomo.domain.events.SceneRequeued` leaves it (the dead letter that follows a
  final failure only adds the errors of attempts whose worker died without reporting).

A job's state is derived from its scenes' states alone, so the order in which different
scenes' events interleave does not change the job's summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from modomo.domain.events import (
    STAGE_OF,
    EventBase,
    JobCompleted,
    JobCreated,
    JobStatus,
    SceneCompleted,
    SceneDeadLettered,
    SceneFailed,
    SceneQueued,
    SceneRequeued,
    SceneStarted,
    StageEvent,
)
from modomo.domain.stages import Stage

SceneStatus = Literal["queued", "running", "retrying", "ok", "partial", "failed"]
TERMINAL: frozenset[SceneStatus] = frozenset({"ok", "partial", "failed"})

_QUEUED, _STARTED, _RETRYING, _ENDED, _REQUEUED = 0, 1, 2, 3, 4
"""Phases within one attempt, in the order they happen."""


class SceneState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Where one scene of one job stands."""

    scene_id: str
    status: SceneStatus = "queued"
    attempt: int = 0
    phase: int = _QUEUED
    stages: frozenset[Stage] = frozenset()
    """Stages finished in the current attempt."""
    errors: tuple[tuple[int, str], ...] = ()
    """``(attempt, error)`` of every failed attempt, in attempt order."""
    objects: int = 0
    avg_conf: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def apply_scene(state: SceneState, event: EventBase) -> SceneState:
    """The scene's state after ``event``; the same state when the event changes nothing."""
    if isinstance(event, SceneRequeued):
        if state.status == "failed" and event.prior_attempts >= state.attempt:
            return msgspec.structs.replace(
                state,
                status="queued",
                attempt=event.prior_attempts,
                phase=_REQUEUED,
                stages=frozenset(),
            )
        return state
    if (
        isinstance(event, SceneDeadLettered)
        and state.status == "failed"
        and event.attempt == state.attempt
    ):
        # The final scene_failed comes first; the dead letter still carries the errors of
        # attempts that ended without one (their worker died), so merge those in.
        merged = state
        for failure in event.errors:
            merged = _with_error(merged, failure.attempt, failure.error)
        return merged
    if state.terminal:
        return state
    match event:
        case SceneQueued():
            return state
        case SceneStarted(attempt=attempt):
            return _advance(state, attempt, _STARTED, "running")
        case StageEvent(attempt=attempt) if attempt >= state.attempt:
            moved = _advance(state, attempt, _STARTED, "running")
            if moved.phase != _STARTED or moved.attempt != attempt:
                return moved
            stage = STAGE_OF[type(event)]
            if stage in moved.stages:
                return moved
            return msgspec.structs.replace(moved, stages=moved.stages | {stage})
        case SceneCompleted(attempt=attempt, status=outcome, objects=objects, avg_conf=avg):
            moved = _advance(state, attempt, _ENDED, outcome)
            if moved is state:
                return state
            return msgspec.structs.replace(moved, objects=objects, avg_conf=avg)
        case SceneFailed(attempt=attempt, will_retry=will_retry, error=error):
            phase, status = (_RETRYING, "retrying") if will_retry else (_ENDED, "failed")
            moved = _advance(state, attempt, phase, status)  # type: ignore[arg-type]
            return moved if moved is state else _with_error(moved, attempt, error)
        case SceneDeadLettered(attempt=attempt, errors=history):
            moved = _advance(state, attempt, _ENDED, "failed")
            if moved is state:
                return state
            for failure in history:
                moved = _with_error(moved, failure.attempt, failure.error)
            return moved
    return state


def _advance(state: SceneState, attempt: int, phase: int, status: SceneStatus) -> SceneState:
    if (attempt, phase) <= (state.attempt, state.phase):
        return state
    stages = state.stages if attempt == state.attempt else frozenset()
    return msgspec.structs.replace(
        state, status=status, attempt=attempt, phase=phase, stages=stages
    )


def _with_error(state: SceneState, attempt: int, error: str) -> SceneState:
    if any(seen == attempt for seen, _ in state.errors):
        return state
    errors = tuple(sorted((*state.errors, (attempt, error))))
    return msgspec.structs.replace(state, errors=errors)


class JobSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Counts and status of a job, derived from its scenes' states."""

    job_id: str
    status: JobStatus
    total: int
    queued: int
    running: int
    ok: int
    partial: int
    failed: int

    @property
    def done(self) -> int:
        return self.ok + self.partial + self.failed

    @property
    def progress(self) -> float:
        """Share of scenes with an outcome, 0..1 (1 for a job of no scenes)."""
        return self.done / self.total if self.total else 1.0


def job_status(*, ok: int, partial: int, failed: int, total: int, started: bool) -> JobStatus:
    """A job's status from its scenes' outcome counts."""
    if ok + partial + failed == total:
        if ok == total:
            return "succeeded"
        return "failed" if failed == total else "partial"
    return "running" if started else "queued"


class JobState:
    """A job and its scenes, folded from the job's events in log order.

    Mutable for speed (a job can hold many thousands of scenes), but deterministic and
    free of I/O: the same events always give the same state.
    """

    __slots__ = ("completed", "dataset_id", "job_id", "scene_ids", "scenes")

    def __init__(self, created: JobCreated) -> None:
        self.job_id = created.job_id
        self.dataset_id = created.dataset_id
        self.scene_ids = tuple(dict.fromkeys(created.scene_ids))
        self.scenes = {sid: SceneState(scene_id=sid) for sid in self.scene_ids}
        self.completed: JobCompleted | None = None

    def apply(self, event: EventBase) -> bool:
        """Fold one event in; True when it changed anything."""
        if getattr(event, "job_id", None) != self.job_id:
            return False
        if isinstance(event, JobCompleted):
            if self.completed is None:
                self.completed = event
                return True
            return False
        scene_id = getattr(event, "scene_id", None)
        current = self.scenes.get(scene_id) if isinstance(scene_id, str) else None
        if current is None:
            return False
        updated = apply_scene(current, event)
        if updated is current:
            return False
        self.scenes[current.scene_id] = updated
        return True

    def summary(self) -> JobSummary:
        """Counts by outcome and the job's status."""
        counts = dict.fromkeys(("queued", "running", "ok", "partial", "failed"), 0)
        started = False
        for scene in self.scenes.values():
            bucket = "running" if scene.status == "retrying" else scene.status
            counts[bucket] += 1
            started = started or scene.attempt > 0
        total = len(self.scenes)
        status = job_status(
            ok=counts["ok"],
            partial=counts["partial"],
            failed=counts["failed"],
            total=total,
            started=started,
        )
        return JobSummary(job_id=self.job_id, status=status, total=total, **counts)


def fold_job(events: Iterable[EventBase]) -> JobState | None:
    """A job's state from its events (its stream, or the log filtered to it).

    Events before the job's ``JobCreated`` are ignored; ``None`` when there is none.
    """
    state: JobState | None = None
    for event in events:
        if state is None:
            if isinstance(event, JobCreated):
                state = JobState(event)
        else:
            state.apply(event)
    return state
