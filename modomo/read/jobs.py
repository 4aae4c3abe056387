"""Jobs: one job with its per-stage timings, and pages of jobs."""

from __future__ import annotations

from datetime import datetime

import msgspec

from modomo.read.sql import Conn, Params, columns_of, json_array, select_list


class StageTiming(msgspec.Struct, kw_only=True, gc=False):
    stage: str
    count: int
    p50_ms: float
    p95_ms: float


class JobOut(msgspec.Struct, kw_only=True, gc=False):
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


class JobPage(msgspec.Struct, kw_only=True, gc=False):
    items: list[JobOut]
    next_cursor: str | None


_PROGRESS = (
    "CASE WHEN j.total > 0 THEN round((j.ok + j.partial + j.failed)::numeric / j.total, 4) "
    "ELSE 1.0 END"
)
_TIMINGS = json_array(
    "SELECT t.key AS stage, count(*) AS count, "
    "round(percentile_cont(0.5) WITHIN GROUP (ORDER BY t.value::float8)::numeric, 2) AS p50_ms, "
    "round(percentile_cont(0.95) WITHIN GROUP (ORDER BY t.value::float8)::numeric, 2) AS p95_ms "
    "FROM job_scenes js, jsonb_each_text(js.stage_ms) t WHERE js.job_id = j.job_id "
    "GROUP BY t.key",
    "x.stage",
)
_COLUMNS = columns_of(JobOut.__struct_fields__, "j", progress=_PROGRESS)
_LIST_COLUMNS = select_list(_COLUMNS | {"stage_timings": "NULL"})
JOB_QUERY = (
    "SELECT row_to_json(x)::text FROM (SELECT "
    f"{select_list(_COLUMNS | {'stage_timings': _TIMINGS})} FROM jobs j WHERE j.job_id = $1) x"
)

_job = msgspec.json.Decoder(JobOut)
_jobs = msgspec.json.Decoder(list[JobOut])


async def job(conn: Conn, job_id: str) -> JobOut | None:
    """The job with its counts, progress and per-stage p50/p95 timings (None if unknown)."""
    found = await conn.fetchval(JOB_QUERY, job_id)
    return None if found is None else _job.decode(found)


async def jobs(
    conn: Conn,
    *,
    dataset_id: str | None,
    status: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[JobOut]:
    """Up to ``limit`` jobs, newest first, created before ``before`` (time, job id)."""
    clauses, arg = ["true"], Params()
    if dataset_id:
        clauses.append(f"j.dataset_id = {arg(dataset_id)}")
    if status:
        clauses.append(f"j.status = {arg(status)}")
    if before is not None:
        clauses.append(f"(j.created_at, j.job_id) < ({arg(before[0])}, {arg(before[1])})")
    found = await conn.fetchval(
        "SELECT "
        + json_array(
            f"SELECT {_LIST_COLUMNS} FROM jobs j WHERE {' AND '.join(clauses)} "
            f"ORDER BY j.created_at DESC, j.job_id DESC LIMIT {arg(limit)}",
            "x.created_at DESC, x.job_id DESC",
        )
        + "::text",
        *arg.values,
    )
    return _jobs.decode(found)
