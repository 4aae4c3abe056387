"""Jobs: start one (recorded and enqueued atomically), read them, follow one over SSE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import structlog
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import HeaderParameter, Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from modomo.api import metrics
from modomo.api.auth import caller_of, ticket_of
from modomo.api.contract import JSON_ERRORS
from modomo.api.hub import Entry, decode_entry
from modomo.api.schemas import Accepted, JobIn, JobOut, JobPage, StageTiming
from modomo.api.services import (
    Conflict,
    CursorAfterTimeId,
    Params,
    Services,
    not_found,
    parse_time_id_cursor,
    time_id_cursor,
)
from modomo.domain.events import JobCreated, SceneQueued, new_id
from modomo.domain.fold import JobState
from modomo.domain.stages import SceneTask
from modomo.projections.projector import parse_id
from modomo.streams.keys import EVENT_FIELD

_JOB_COLUMNS = (
    "job_id, dataset_id, status, total, queued, running, ok, partial, failed, "
    "stages, resize_max_px, created_by, created_at, started_at, finished_at"
)
ENTRY_ID_PATTERN = r"^([0-9]{1,20}-[0-9]{1,20})?$"
"""A stream entry id (``<ms>-<seq>``), or empty: from the start (as EventSource sends it)."""
KEEP_ALIVE_S = 15.0
_log = structlog.get_logger("modomo.api.sse")


def _job(row: Any) -> JobOut:
    values = dict(row)
    total = values["total"]
    done = values["ok"] + values["partial"] + values["failed"]
    return JobOut(**values, progress=round(done / total, 4) if total else 1.0)


async def job_row(svc: Services, job_id: str, timings: bool = False) -> JobOut:
    row = await svc.db.fetchrow(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = $1", job_id)
    if row is None:
        raise not_found("job", job_id)
    job = _job(row)
    if timings:
        rows = await svc.db.fetch(
            "SELECT key AS stage, count(*) AS n, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY value::float8) AS p50, "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY value::float8) AS p95 "
            "FROM job_scenes, jsonb_each_text(stage_ms) WHERE job_id = $1 "
            "GROUP BY key ORDER BY key",
            job_id,
        )
        job.stage_timings = [
            StageTiming(
                stage=r["stage"], count=r["n"], p50_ms=round(r["p50"], 2), p95_ms=round(r["p95"], 2)
            )
            for r in rows
        ]
    return job


class JobController(Controller):
    path = "/jobs"
    tags = ["jobs"]

    @post(
        "/",
        opt={"role": "reviewer"},
        status_code=201,
        raises=[NotFoundException, Conflict],
        summary="Start a job over a dataset (or some of its scenes)",
        description="The job_created event, one scene_queued event per scene and one "
        "task per scene are written in one atomic step: a job is never "
        "recorded but half enqueued, nor enqueued but not recorded.",
    )
    async def create(
        self, request: Request[Any, Any, Any], data: JobIn, svc: Services
    ) -> Response[JobOut | Accepted]:
        exists = await svc.db.fetchval(
            "SELECT 1 FROM datasets WHERE dataset_id = $1", data.dataset_id
        )
        if not exists:
            raise not_found("dataset", data.dataset_id)
        rows = await svc.db.fetch(
            "SELECT scene_id, r2_key_original, etag FROM scenes WHERE dataset_id = $1 "
            "AND ($2::text[] IS NULL OR scene_id = ANY($2::text[])) ORDER BY scene_id",
            data.dataset_id,
            data.scene_ids,
        )
        keys = {r["scene_id"]: r["r2_key_original"] for r in rows}
        etags = {r["scene_id"]: r["etag"] for r in rows}
        if data.scene_ids is not None:
            missing = [s for s in dict.fromkeys(data.scene_ids) if s not in keys]
            if missing:
                raise NotFoundException(
                    f"scene_ids: not registered in this dataset: {', '.join(missing[:20])}"
                )
            scene_ids = list(dict.fromkeys(data.scene_ids))
        else:
            scene_ids = list(keys)
        if not scene_ids:
            raise Conflict("the dataset has no registered scenes to process")
        job_id = new_id()
        created = JobCreated(
            job_id=job_id,
            dataset_id=data.dataset_id,
            scene_ids=tuple(scene_ids),
            stages=data.stages,
            resize_max_px=data.resize_max_px,
            created_by=caller_of(request).subject,
        )
        queued = [SceneQueued(job_id=job_id, scene_id=s) for s in scene_ids]
        tasks = [
            SceneTask(
                job_id=job_id,
                scene_id=s,
                r2_key_original=keys[s],
                resize_max_px=data.resize_max_px,
                stages=data.stages,
                etag=etags[s],
            )
            for s in scene_ids
        ]
        async with svc.redis.pipeline(transaction=True) as pipe:
            staged = await svc.log.stage(pipe, [created, *queued], tasks)
            svc.completion.stage_total(pipe, job_id, len(scene_ids))
            appended = staged.read(await pipe.execute())
        metrics.JOBS_CREATED.inc()
        late = await svc.unapplied("jobs", created.event_id, appended.log_ids[0])
        if late is not None:
            return late
        return Response(await job_row(svc, job_id), status_code=201)

    @get("/", opt={"role": "viewer"}, summary="List jobs, newest first")
    async def list_jobs(
        self,
        svc: Services,
        dataset_id: str | None = None,
        status: str | None = None,
        cursor: CursorAfterTimeId = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    ) -> JobPage:
        clauses, arg = ["true"], Params()

        if dataset_id:
            clauses.append(f"dataset_id = {arg(dataset_id)}")
        if status:
            clauses.append(f"status = {arg(status)}")
        if cursor:
            at, job_id = parse_time_id_cursor(cursor)
            clauses.append(f"(created_at, job_id) < ({arg(at)}, {arg(job_id)})")
        rows = await svc.db.fetch(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {' AND '.join(clauses)} "
            f"ORDER BY created_at DESC, job_id DESC LIMIT {arg(limit + 1)}",
            *arg.values,
        )
        items = [_job(r) for r in rows[:limit]]
        more = len(rows) > limit
        return JobPage(
            items=items,
            next_cursor=time_id_cursor(items[-1].created_at, items[-1].job_id) if more else None,
        )

    @get(
        "/{job_id:str}",
        opt={"role": "viewer"},
        summary="One job: state, counts, progress, per-stage timings",
    )
    async def get_job(self, job_id: str, svc: Services) -> JobOut:
        return await job_row(svc, job_id, timings=True)

    @get(
        "/{job_id:str}/events",
        opt={"role": "viewer", "ticket": "job_id"},
        media_type="text/event-stream",
        exception_handlers=JSON_ERRORS,
        summary="Live job events (Server-Sent Events)",
        description="Each event's `id:` is its Redis stream entry id. A new client gets "
        "the job's whole history, then live events; a client reconnecting "
        "with `Last-Event-ID` continues right after that entry. Keep-alive "
        "comments every 15 s. The stream ends after the job's final event. A browser's "
        "EventSource, which cannot send headers, authenticates with `?ticket=` from "
        "`POST /jobs/{job_id}/events/ticket` instead; a ticket asked for with `after` "
        "resumes there, as Last-Event-ID would. A job "
        "whose stream has expired from Redis (a while after it ended) is served "
        "from the event archive; its ids are then those of the event log.",
    )
    async def events(
        self,
        job_id: str,
        request: Request[Any, Any, Any],
        svc: Services,
        last_event_id: Annotated[
            str,
            HeaderParameter(
                name="Last-Event-ID",
                pattern=ENTRY_ID_PATTERN,
                required=False,
                description="resume right after this entry id (what EventSource sends)",
            ),
        ] = "",
    ) -> ServerSentEvent:
        last = last_event_id or ticket_of(request).get("after") or "0-0"
        stream = svc.keys.job_events(job_id)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        if not await svc.redis.exists(stream):
            # Expired after the job ended (or never existed): the archive has every event.
            if not await svc.db.fetchval("SELECT 1 FROM event_log WHERE job_id = $1", job_id):
                raise not_found("job", job_id)
            return ServerSentEvent(_archived(svc, job_id, last), headers=headers)
        return ServerSentEvent(_follow(svc, job_id, last), headers=headers)


async def _follow(svc: Services, job_id: str, after: str) -> AsyncIterator[ServerSentEventMessage]:
    """The job's events after ``after``, history first, until the job has ended."""
    stream = svc.keys.job_events(job_id)
    state: JobState | None = None
    sent = parse_id(after)
    # Jobs started through the API end with a job_done event; follow until it arrives.
    expects_done = bool(await svc.redis.hexists(svc.keys.job_meta(job_id), "total"))
    metrics.SSE_CLIENTS.inc()
    try:
        async with svc.hub.subscribe(job_id, "$") as sub:
            # History from the start: the fold needs every event to know when the job ends,
            # but only those after Last-Event-ID are sent.
            history: Any = await svc.redis.xrange(stream)
            for entry_id, fields in history:
                entry = decode_entry(entry_id.decode(), fields.get(EVENT_FIELD, b""))
                message, state = _message(entry, state, sent)
                if message is not None:
                    sent = entry.key
                    yield message
            while not _ended(state, expects_done):
                if sub.overflowed:
                    return  # the client reconnects with Last-Event-ID and misses nothing
                try:
                    # asyncio.timeout, not wait_for: no task per event per client.
                    async with asyncio.timeout(KEEP_ALIVE_S):
                        entry = await sub.queue.get()
                except TimeoutError:
                    yield ServerSentEventMessage(data=None, comment="keep-alive")
                    continue
                message, state = _message(entry, state, sent)
                if message is not None:
                    sent = entry.key
                    yield message
    finally:
        metrics.SSE_CLIENTS.dec()


ARCHIVE_PAGE = 2000
"""Archived events read per query when serving an expired job's stream."""


async def _archived(
    svc: Services, job_id: str, after: str
) -> AsyncIterator[ServerSentEventMessage]:
    """A finished job's events from the Postgres archive (its Redis stream has expired),
    after ``after``, then the end of the stream."""
    ms, seq = parse_id(after)
    while rows := await svc.db.fetch(
        "SELECT ms, seq, payload FROM event_log WHERE job_id = $1 AND (ms, seq) > ($2, $3) "
        "ORDER BY ms, seq LIMIT $4",
        job_id,
        ms,
        seq,
        ARCHIVE_PAGE,
    ):
        for row in rows:
            entry = decode_entry(f"{row['ms']}-{row['seq']}", bytes(row["payload"]))
            message, _ = _message(entry, None, (ms, seq))
            if message is not None:
                yield message
        ms, seq = rows[-1]["ms"], rows[-1]["seq"]


def _message(
    entry: Entry, state: JobState | None, sent: tuple[int, int]
) -> tuple[ServerSentEventMessage | None, JobState | None]:
    """Fold ``entry`` into the client's view of the job; the SSE message if it is new."""
    event = entry.event
    if event is None:
        _log.warning("sse_undecodable_event", entry_id=entry.id)
    elif state is None:
        if isinstance(event, JobCreated):
            state = JobState(event)
    else:
        state.apply(event)
    if entry.key <= sent:
        return None, state
    tag = "unreadable" if event is None else str(type(event).__struct_config__.tag)
    # The stored JSON is the event's own encoding: sent as it is, not decoded and re-encoded.
    return ServerSentEventMessage(id=entry.id, event=tag, data=entry.data), state


def _ended(state: JobState | None, expects_done: bool) -> bool:
    if state is None:
        return False
    if expects_done:
        return state.completed is not None
    return state.summary().status in ("succeeded", "partial", "failed")
