"""Jobs: one job with its per-stage timings, and pages of jobs.

The per-stage p50/p95 of a 300-scene job take PostgreSQL over a millisecond (every
scene's timings, sorted per stage), thirty times the rest of the read. They change only
with the job, so :class:`JobReader` keeps them per job and version (the job row's
``updated_at``): for a finished job until it changes again, for a running one at most
``running_ttl_s`` (one second), so two changes stamped with the same microsecond cannot
keep a stale figure for longer than that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import msgspec

from modomo.read.sql import Conn, Params, columns_of, in_org, json_array, select_list


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
_PERCENTILE = "percentile_cont({}) WITHIN GROUP (ORDER BY t.value::float8)"
TIMINGS_QUERY = (
    "SELECT "
    + json_array(
        "SELECT t.key AS stage, count(*) AS count, "
        f"round({_PERCENTILE.format(0.5)}::numeric, 2) AS p50_ms, "
        f"round({_PERCENTILE.format(0.95)}::numeric, 2) AS p95_ms "
        "FROM job_scenes js, jsonb_each_text(js.stage_ms) t WHERE js.job_id = $1 "
        f"AND {in_org('js')} "
        "GROUP BY t.key",
        "x.stage",
    )
    + "::text"
)
_COLUMNS = columns_of(JobOut.__struct_fields__, "j", progress=_PROGRESS)
_LIST_COLUMNS = select_list(_COLUMNS | {"stage_timings": "NULL"})
JOB_QUERY = (
    f"SELECT (SELECT row_to_json(x) FROM (SELECT {_LIST_COLUMNS}) x)::text AS doc, "
    f"j.updated_at FROM jobs j WHERE j.job_id = $1 AND {in_org('j')}"
)

_job = msgspec.json.Decoder(JobOut)
_jobs = msgspec.json.Decoder(list[JobOut])
_timings = msgspec.json.Decoder(list[StageTiming])


@dataclass(frozen=True, slots=True)
class _Timed:
    version: datetime | None
    at: float
    timings: list[StageTiming]


class JobReader:
    """Reads one job, keeping its stage timings as long as they cannot have changed."""

    def __init__(
        self,
        running_ttl_s: float = 1.0,
        max_jobs: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.running_ttl_s = running_ttl_s
        self.max_jobs = max_jobs
        self._clock = clock
        self._timed: dict[str, _Timed] = {}

    async def job(self, conn: Conn, job_id: str) -> JobOut | None:
        """The job with counts, progress and per-stage p50/p95 timings (None if unknown)."""
        row = await conn.fetchrow(JOB_QUERY, job_id)
        if row is None:
            return None
        found = _job.decode(row["doc"])
        version, now = row["updated_at"], self._clock()
        timed = self._timed.get(job_id)
        if (
            timed is None
            or timed.version != version
            or (found.finished_at is None and now - timed.at >= self.running_ttl_s)
        ):
            timed = _Timed(
                version, now, _timings.decode(await conn.fetchval(TIMINGS_QUERY, job_id))
            )
            if len(self._timed) >= self.max_jobs:
                for old in list(self._timed)[: self.max_jobs // 2]:
                    del self._timed[old]
            self._timed[job_id] = timed
        found.stage_timings = timed.timings
        return found


async def job_exists(conn: Conn, job_id: str) -> bool:
    """Whether the caller's organisation has the job."""
    return bool(
        await conn.fetchval(f"SELECT 1 FROM jobs j WHERE j.job_id = $1 AND {in_org('j')}", job_id)
    )


async def jobs(
    conn: Conn,
    *,
    dataset_id: str | None,
    status: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[JobOut]:
    """Up to ``limit`` jobs, newest first, created before ``before`` (time, job id)."""
    clauses, arg = [in_org("j")], Params()
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
