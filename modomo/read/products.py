"""Exports and evaluations, as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from modomo.read.sql import ORG, Conn, Params


class ExportOut(msgspec.Struct, kw_only=True, gc=False):
    export_id: str
    dataset_id: str
    format: str
    as_of: str
    reviewed_only: bool
    requested_by: str
    status: str
    """``queued``, ``running``, ``retrying``, ``done`` or ``failed``."""
    position: str | None = None
    """The log entry the export holds the dataset as of (once the worker resolved it)."""
    scenes: int = 0
    objects: int = 0
    size_bytes: int | None = None
    sha256: str | None = None
    error: str | None = None
    attempts: int = 0
    requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    key: str | None = None
    """Where the zip lies in the bucket (the API answers a presigned URL for it)."""


_EXPORT_SELECT = f"SELECT {', '.join(ExportOut.__struct_fields__)} FROM exports"


async def export(conn: Conn, export_id: str) -> ExportOut | None:
    row = await conn.fetchrow(
        f"{_EXPORT_SELECT} WHERE export_id = $1 AND org_id = {ORG}", export_id
    )
    return None if row is None else ExportOut(**dict(row))


async def exports(
    conn: Conn, *, dataset_id: str | None, before: tuple[datetime, str] | None, limit: int
) -> list[ExportOut]:
    """Exports newest first (of one dataset when given); ``limit + 1`` tells if more exist."""
    arg = Params()
    where = [f"org_id = {ORG}"]
    if dataset_id is not None:
        where.append(f"dataset_id = {arg(dataset_id)}")
    if before is not None:
        where.append(f"(requested_at, export_id) < ({arg(before[0])}, {arg(before[1])})")
    clause = f"WHERE {' AND '.join(where)}"
    rows = await conn.fetch(
        f"{_EXPORT_SELECT} {clause} ORDER BY requested_at DESC, export_id DESC "
        f"LIMIT {arg(limit + 1)}",
        *arg.values,
    )
    return [ExportOut(**dict(r)) for r in rows]


class EvaluationOut(msgspec.Struct, kw_only=True, gc=False):
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


_EVAL_SELECT = f"SELECT {', '.join(EvaluationOut.__struct_fields__)} FROM evaluations"


def _evaluation(row: Any) -> EvaluationOut:
    return EvaluationOut(**dict(row))


async def evaluation(conn: Conn, evaluation_id: str) -> EvaluationOut | None:
    row = await conn.fetchrow(
        f"{_EVAL_SELECT} WHERE evaluation_id = $1 AND org_id = {ORG}", evaluation_id
    )
    return None if row is None else _evaluation(row)


async def evaluations(
    conn: Conn,
    *,
    golden_sha256: str | None,
    job_id: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[EvaluationOut]:
    """Evaluations newest first, optionally of one golden set or one job."""
    arg = Params()
    where = [f"org_id = {ORG}"]
    if golden_sha256 is not None:
        where.append(f"golden_sha256 = {arg(golden_sha256)}")
    if job_id is not None:
        where.append(f"job_id = {arg(job_id)}")
    if before is not None:
        where.append(f"(created_at, evaluation_id) < ({arg(before[0])}, {arg(before[1])})")
    clause = f"WHERE {' AND '.join(where)}"
    rows = await conn.fetch(
        f"{_EVAL_SELECT} {clause} ORDER BY created_at DESC, evaluation_id DESC "
        f"LIMIT {arg(limit + 1)}",
        *arg.values,
    )
    return [_evaluation(r) for r in rows]
