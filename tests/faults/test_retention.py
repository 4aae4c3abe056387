"""Bounded Redis: a finished job's keys expire after the retention, and workers trim the
queue below every group's position without removing pending or unread entries."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from modomo.domain.events import EventBase, JobCompleted, SceneCompleted
from modomo.streams.dead import DeadLetters
from modomo.streams.delivery import TaskContext
from modomo.streams.keys import GPU_GROUP, Keys
from tests.integration.conftest import fast_settings
from tests.integration.handlers import behave
from tests.integration.support import enqueue, job_events, running, wait_for


async def test_a_finished_jobs_keys_expire_after_the_retention(redis: Redis, prefix: str) -> None:
    settings = fast_settings(prefix, job_retention_s=2, max_attempts=1)
    keys = Keys(prefix)
    job_id, _ = await enqueue(redis, settings, ["ok-1", "ok-2", "fail-3"], count_scenes=True)
    job_keys = [keys.job_events(job_id), keys.job_meta(job_id), keys.job_ended(job_id)]
    job_keys.append(keys.done(job_id))
    async with running(redis, settings, behave):

        async def ended() -> bool:
            events = await job_events(redis, settings, job_id)
            return any(isinstance(e, JobCompleted) for e in events)

        await wait_for(ended, what="job_done")
        ttls = [await redis.ttl(key) for key in job_keys]
        assert all(0 < ttl <= 2 for ttl in ttls), dict(zip(job_keys, ttls, strict=True))

        async def gone() -> bool:
            return await redis.exists(*job_keys) == 0

        await wait_for(gone, within=10, what="the job's keys to expire")
    # What operators still need stays: the log and the dead stream.
    assert await redis.xlen(keys.events) > 0
    [dead] = await DeadLetters(redis, keys).oldest()
    assert dead.scene_id == "fail-3"


async def test_workers_trim_the_queue_but_never_pending_or_unread_entries(
    redis: Redis, prefix: str
) -> None:
    settings = fast_settings(prefix, queue_trim_interval_s=0.1)
    keys = Keys(prefix)
    release = asyncio.Event()

    async def holding(ctx: TaskContext) -> Sequence[EventBase]:
        task = ctx.delivery.task
        if task.scene_id.startswith("hold-"):
            await release.wait()  # pending, in flight, while the trimmer runs
        return [SceneCompleted(job_id=task.job_id, scene_id=task.scene_id)]

    await enqueue(redis, settings, [f"ok-{i}" for i in range(5)])
    _, held = await enqueue(redis, settings, ["hold-1"])
    _, unread = await enqueue(redis, settings, ["ok-after"])
    async with running(redis, settings, holding) as worker:

        async def trimmed() -> bool:
            rows: Any = await redis.xrange(keys.queue)
            return [r[0].decode() for r in rows] == held.task_ids + unread.task_ids

        # The five acked tasks go; the pending one and the one behind it stay.
        await wait_for(trimmed, within=20, what="the queue to be trimmed")
        runs = worker.housekeeping.trim_runs

        async def trimmer_ran_again() -> bool:
            return worker.housekeeping.trim_runs >= runs + 2

        await wait_for(trimmer_ran_again, within=20, what="two more trims")
        assert await trimmed()
        release.set()

        async def all_trimmed() -> bool:
            return await redis.xlen(keys.queue) == 0

        await wait_for(all_trimmed, within=20, what="the rest to be trimmed once acked")
    info: Any = await redis.xinfo_stream(keys.queue)
    assert info["entries-added"] == 7


async def test_an_entry_another_group_has_not_read_is_never_trimmed(
    redis: Redis, prefix: str
) -> None:
    settings = fast_settings(prefix, queue_trim_interval_s=0.1)
    keys = Keys(prefix)
    _, appended = await enqueue(redis, settings, ["ok-a", "ok-b"])
    # A second group that has read nothing (an auditor, a new kind of consumer).
    await redis.xgroup_create(keys.queue, "late-readers", id="0")
    async with running(redis, settings, behave) as worker:

        async def acked_and_trimmer_ran() -> bool:
            summary: Any = await redis.xpending(keys.queue, GPU_GROUP)
            return summary["pending"] == 0 and worker.housekeeping.trim_runs >= 3

        await wait_for(acked_and_trimmer_ran, what="the tasks done and trims tried")
    rows: Any = await redis.xrange(keys.queue)
    assert [r[0].decode() for r in rows] == appended.task_ids
