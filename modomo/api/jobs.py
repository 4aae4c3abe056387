"""Jobs: start one (recorded and enqueued atomically), read them, follow one over SSE."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException, TooManyRequestsException
from litestar.params import HeaderParameter, Parameter
from litestar.response import Stream

from modomo.api import metrics, sse
from modomo.api.auth import caller_of, ticket_of
from modomo.api.contract import JSON_ERRORS
from modomo.api.orgs import release_scenes, reserve_scenes
from modomo.api.schemas import Accepted, JobIn
from modomo.api.services import (
    Conflict,
    CursorAfterTimeId,
    Services,
    not_found,
    parse_time_id_cursor,
    time_id_cursor,
)
from modomo.domain.events import JobCreated, SceneQueued, new_id
from modomo.domain.stages import SceneTask
from modomo.read import archive, datasets, jobs, scenes
from modomo.read.jobs import JobOut, JobPage

ENTRY_ID_PATTERN = r"^([0-9]{1,20}-[0-9]{1,20})?$"
"""A stream entry id (``<ms>-<seq>``), or empty: from the start (as EventSource sends it)."""


async def job_out(svc: Services, job_id: str) -> JobOut:
    found = await svc.jobs.job(svc.db, job_id)
    if found is None:
        raise not_found("job", job_id)
    return found


class JobController(Controller):
    path = "/jobs"
    tags = ["jobs"]

    @post(
        "/",
        opt={"role": "reviewer"},
        status_code=201,
        raises=[NotFoundException, Conflict, TooManyRequestsException],
        summary="Start a job over a dataset (or some of its scenes)",
        description="The job_created event, one scene_queued event per scene and one "
        "task per scene are written in one atomic step: a job is never "
        "recorded but half enqueued, nor enqueued but not recorded.",
    )
    async def create(
        self, request: Request[Any, Any, Any], data: JobIn, svc: Services
    ) -> Response[JobOut | Accepted]:
        if not await datasets.dataset_exists(svc.db, data.dataset_id):
            raise not_found("dataset", data.dataset_id)
        found = await scenes.originals(svc.db, data.dataset_id, data.scene_ids)
        keys = {scene_id: key for scene_id, (key, _) in found.items()}
        etags = {scene_id: etag for scene_id, (_, etag) in found.items()}
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
        caller = caller_of(request)
        quota = await reserve_scenes(svc, caller.org, len(scene_ids))
        job_id = new_id()
        created = JobCreated(
            job_id=job_id,
            dataset_id=data.dataset_id,
            scene_ids=tuple(scene_ids),
            stages=data.stages,
            resize_max_px=data.resize_max_px,
            created_by=caller.subject,
            org=caller.org,
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
        try:
            async with svc.redis.pipeline(transaction=True) as pipe:
                staged = await svc.log.stage(pipe, [created, *queued], tasks)
                svc.completion.stage_total(pipe, job_id, len(scene_ids))
                appended = staged.read(await pipe.execute())
        except BaseException:
            await release_scenes(svc, quota, len(scene_ids))
            raise
        metrics.JOBS_CREATED.inc()
        late = await svc.unapplied("jobs", created.event_id, appended.log_ids[0])
        if late is not None:
            return late
        return Response(await job_out(svc, job_id), status_code=201)

    @get("/", opt={"role": "viewer"}, summary="List jobs, newest first")
    async def list_jobs(
        self,
        svc: Services,
        dataset_id: str | None = None,
        status: str | None = None,
        cursor: CursorAfterTimeId = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    ) -> JobPage:
        before = None
        if cursor:
            at, last = parse_time_id_cursor(cursor)
            before = (at, last)
        rows = await jobs.jobs(
            svc.db, dataset_id=dataset_id, status=status, before=before, limit=limit + 1
        )
        items = rows[:limit]
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
        return await job_out(svc, job_id)

    @get(
        "/{job_id:str}/events",
        opt={"role": "viewer", "ticket": "job_id"},
        media_type="text/event-stream",
        exception_handlers=JSON_ERRORS,
        summary="Live job events (Server-Sent Events)",
        description="Each event's `id:` is its Redis stream entry id. A new client gets "
        "the job's whole history, then live events; a client reconnecting "
        "with `Last-Event-ID` continues right after that entry. Keep-alive "
        "comments every 15 s. The stream ends after the job's final event (`job_done`). "
        "An `event: gap` message (no id) says that entries after the client's position "
        "were trimmed away. A browser's "
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
    ) -> Stream:
        if not await jobs.job_exists(svc.db, job_id):  # another organisation's, or none
            raise not_found("job", job_id)
        last = last_event_id or ticket_of(request).get("after") or "0-0"
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        info = await sse.stream_info(svc.hub, job_id)
        if info is None:
            # Expired after the job ended (or never existed): the archive has every event.
            if not await archive.job_archived(svc.db, job_id):
                raise not_found("job", job_id)
            frames = sse.archived(svc.db, job_id, last)
        else:
            frames = sse.follow(svc.hub, job_id, last, info)
        return Stream(frames, media_type="text/event-stream", headers=headers)
