"""Pure folds of the dataset products' read models: exports and evaluations.

An export moves ``queued`` → ``running`` → ``done`` or ``failed`` (``retrying`` between
attempts). ``done`` and a final ``failed`` are terminal: a late event of an earlier attempt
(a worker that was presumed dead and finished after all) changes nothing once the export
has ended, so duplicated and reordered deliveries leave the same row.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from modomo.domain.events import (
    EvaluationRecorded,
    EventBase,
    ExportCompleted,
    ExportFailed,
    ExportRequested,
    ExportStarted,
)
from modomo.domain.orgs import DEFAULT_ORG
from modomo.domain.views import Unapplicable

EXPORT_TERMINAL = frozenset({"done", "failed"})


class ExportRow(msgspec.Struct, kw_only=True, gc=False):
    export_id: str
    dataset_id: str
    format: str
    as_of: str
    reviewed_only: bool
    requested_by: str
    status: str
    position: str | None = None
    scenes: int = 0
    objects: int = 0
    key: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    error: str | None = None
    attempts: int = 0
    requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    org_id: str = DEFAULT_ORG


def apply_export(row: ExportRow | None, event: EventBase) -> ExportRow:
    """The export's row after ``event``; raises Unapplicable for an unknown export."""
    if isinstance(event, ExportRequested):
        if row is not None:
            return row  # a duplicate request event changes nothing
        return ExportRow(
            export_id=event.export_id,
            dataset_id=event.dataset_id,
            format=event.format,
            as_of=event.as_of,
            reviewed_only=event.reviewed_only,
            requested_by=event.requested_by,
            status="queued",
            requested_at=event.at,
            updated_at=event.at,
            org_id=event.org,
        )
    if row is None:
        export_id = getattr(event, "export_id", "?")
        raise Unapplicable(f"export {export_id} was never requested")
    if row.status in EXPORT_TERMINAL:
        return row
    match event:
        case ExportStarted():
            row.status = "running"
            row.position, row.scenes = event.position, event.scenes
            row.attempts = max(row.attempts, event.attempt)
            row.started_at = row.started_at or event.at
            row.error = None
        case ExportCompleted():
            row.status = "done"
            row.position, row.key = event.position, event.key
            row.size_bytes, row.sha256 = event.size_bytes, event.sha256
            row.scenes, row.objects = event.scenes, event.objects
            row.finished_at = event.at
            row.error = None
        case ExportFailed():
            row.status = "retrying" if event.will_retry else "failed"
            row.error = event.error
            row.attempts = max(row.attempts, event.attempt)
            row.finished_at = None if event.will_retry else event.at
        case _:
            return row
    row.updated_at = event.at
    return row


class EvaluationRow(msgspec.Struct, kw_only=True, gc=False):
    evaluation_id: str
    golden: str
    golden_sha256: str
    job_id: str
    models: dict[str, str]
    profile: str
    scenes: int
    missing: int
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    previous_id: str
    deltas: dict[str, float]
    regressions: list[str]
    notes: list[str]
    evaluated_by: str
    created_at: datetime
    org_id: str = DEFAULT_ORG


def evaluation_row(event: EvaluationRecorded) -> EvaluationRow:
    """The ``evaluations`` row of a recorded evaluation (one event, one row)."""
    return EvaluationRow(
        evaluation_id=event.evaluation_id,
        golden=event.golden,
        golden_sha256=event.golden_sha256,
        job_id=event.job_id,
        models=dict(event.models),
        profile=event.profile,
        scenes=event.scenes,
        missing=event.missing,
        metrics=dict(event.metrics),
        per_class={k: dict(v) for k, v in event.per_class.items()},
        previous_id=event.previous_id,
        deltas=dict(event.deltas),
        regressions=list(event.regressions),
        notes=list(event.notes),
        evaluated_by=event.evaluated_by,
        created_at=event.at,
        org_id=event.org,
    )
