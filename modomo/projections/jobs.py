"""The jobs projector: ``jobs`` (status, counts, progress, timestamps) and ``job_scenes``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import asyncpg
import msgspec

from modomo.domain.events import (
    EVENT_TYPES,
    JobCompleted,
    JobCreated,
    JobEvent,
    SceneEvent,
    SceneQueued,
    SceneRequeued,
)
from modomo.domain.views import JobRow, JobSceneRow, apply_job_scene, new_job
from modomo.projections.projector import LogEntry, Parked, Projector, event_type_of
from modomo.projections.tables import upsert

JOB_COLUMNS = tuple(JobRow.__struct_fields__)
JOB_SCENE_COLUMNS = tuple(JobSceneRow.__struct_fields__)


class JobsProjector(Projector):
    name = "jobs"
    tables: ClassVar[tuple[str, ...]] = ("jobs", "job_scenes")
    interest: ClassVar[frozenset[str] | None] = frozenset(
        tag for tag, cls in EVENT_TYPES.items() if issubclass(cls, JobEvent)
    )

    async def apply(
        self, conn: asyncpg.Connection[Any], entries: Sequence[LogEntry]
    ) -> list[Parked]:
        job_ids: set[str] = set()
        pairs: set[tuple[str, str]] = set()
        for entry in entries:
            event = entry.event
            if isinstance(event, JobEvent):
                job_ids.add(event.job_id)
                scene_id = getattr(event, "scene_id", None)
                if scene_id is not None:
                    pairs.add((event.job_id, scene_id))
        jobs = await _load_jobs(conn, job_ids)
        scenes = await _load_job_scenes(conn, pairs)
        changed_jobs: set[str] = set()
        changed_scenes: set[tuple[str, str]] = set()
        parked: list[Parked] = []
        for entry in entries:
            event = entry.event
            if isinstance(event, JobCreated):
                if event.job_id in jobs:
                    continue  # a duplicate: the first one made the job
                row, rows = new_job(event)
                jobs[event.job_id] = row
                changed_jobs.add(event.job_id)
                for scene_id, fresh in rows.items():
                    scenes[(event.job_id, scene_id)] = fresh
                    changed_scenes.add((event.job_id, scene_id))
                continue
            if not isinstance(event, JobEvent):
                continue
            job = jobs.get(event.job_id)
            if job is None:
                parked.append(
                    Parked(
                        entry.entry_id,
                        event_type_of(entry),
                        f"job {event.job_id} does not exist",
                        entry.raw,
                    )
                )
                continue
            if isinstance(event, JobCompleted):
                continue  # the job's outcome is derived from its scenes
            if isinstance(event, SceneEvent | SceneQueued | SceneRequeued):
                key = (event.job_id, event.scene_id)
                scene = scenes.get(key)
                if scene is None:
                    parked.append(
                        Parked(
                            entry.entry_id,
                            event_type_of(entry),
                            f"scene {event.scene_id} is not part of job {event.job_id}",
                            entry.raw,
                        )
                    )
                    continue
                if apply_job_scene(job, scene, event):
                    changed_jobs.add(event.job_id)
                    changed_scenes.add(key)
        await upsert(
            conn,
            "jobs",
            ("job_id",),
            JOB_COLUMNS,
            (msgspec.structs.astuple(jobs[j]) for j in sorted(changed_jobs)),
        )
        await upsert(
            conn,
            "job_scenes",
            ("job_id", "scene_id"),
            JOB_SCENE_COLUMNS,
            (msgspec.structs.astuple(scenes[k]) for k in sorted(changed_scenes)),
        )
        return parked


async def _load_jobs(conn: asyncpg.Connection[Any], job_ids: set[str]) -> dict[str, JobRow]:
    if not job_ids:
        return {}
    rows = await conn.fetch(
        f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE job_id = ANY($1::text[])", list(job_ids)
    )
    return {r["job_id"]: JobRow(**dict(r)) for r in rows}


async def _load_job_scenes(
    conn: asyncpg.Connection[Any], pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], JobSceneRow]:
    if not pairs:
        return {}
    jobs, scenes = zip(*pairs, strict=True)
    rows = await conn.fetch(
        f"SELECT {', '.join(JOB_SCENE_COLUMNS)} FROM job_scenes js "
        "JOIN unnest($1::text[], $2::text[]) AS k(job_id, scene_id) "
        "USING (job_id, scene_id)",
        list(jobs),
        list(scenes),
    )
    return {(r["job_id"], r["scene_id"]): JobSceneRow(**dict(r)) for r in rows}
