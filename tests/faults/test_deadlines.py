"""Deadlines and lost claims: a hung call never keeps a scene, and a worker that lost its
scene appends nothing more for it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from modomo.domain.events import (
    EventBase,
    ModelRef,
    SceneCaptioned,
    SceneCompleted,
    SceneFailed,
    SceneStarted,
)
from modomo.settings import Settings
from modomo.streams.delivery import EXIT_RESTART, TaskContext, lock_token
from modomo.streams.fence import Fenced
from modomo.streams.keys import GPU_GROUP, Keys
from modomo.streams.reclaim import _CLAIM
from tests.faults.workers import WorkerProcess
from tests.integration.conftest import fast_settings
from tests.integration.handlers import late_key
from tests.integration.support import calls, enqueue, job_events, running, wait_for


async def test_a_call_hung_past_the_task_deadline_fails_the_attempt_and_its_late_result_is_refused(
    tmp_path: Path, prefix: str, redis: Redis
) -> None:
    # A lock that outlived its attempt would hold the retry for a minute: the retry comes
    # within the test's wait only because the failed attempt released the scene lock.
    settings = fast_settings(
        prefix, task_timeout_s=0.5, stage_timeout_s=0.5, lock_ttl_ms=60_000, max_attempts=3
    )
    job_id, _ = await enqueue(redis, settings, ["hang1-a"])
    worker = WorkerProcess(settings, tmp_path / "worker.log", MODOMO_TEST_HANG_S="1.5")
    try:

        async def done() -> bool:
            events = await job_events(redis, settings, job_id)
            return any(isinstance(e, SceneCompleted) for e in events)

        await wait_for(done, within=30, what="the retry to finish the scene")

        async def late_seen() -> bool:
            return bool(await redis.lrange(late_key(prefix, "hang1-a"), 0, -1))

        await wait_for(late_seen, within=30, what="the hung thread to wake up")
        assert worker.alive
    finally:
        assert worker.stop() == 0
    assert await redis.lrange(late_key(prefix, "hang1-a"), 0, -1) == [b"refused"]
    events = await job_events(redis, settings, job_id)
    mine = [e for e in events if getattr(e, "scene_id", None) == "hang1-a"]
    assert [type(e) for e in mine] == [SceneStarted, SceneFailed, SceneStarted, SceneCompleted]
    failed = mine[1]
    assert isinstance(failed, SceneFailed)
    assert (failed.attempt, failed.will_retry, failed.failure) == (1, True, "transient")
    assert "deadline" in failed.error
    assert not any(isinstance(e, SceneCaptioned) for e in events)  # the late result
    assert [a for _, a, _ in await calls(redis, settings, "hang1-a")] == [1, 2]


async def test_a_worker_whose_model_call_hung_records_the_attempt_and_exits_for_a_restart(
    tmp_path: Path, prefix: str, redis: Redis
) -> None:
    settings = fast_settings(prefix)
    job_id, _ = await enqueue(redis, settings, ["wedge-w", "ok-after"])
    first = WorkerProcess(settings, tmp_path / "first.log")
    code = await asyncio.to_thread(first.wait, 30)
    assert code == EXIT_RESTART
    assert first.events("worker_cannot_continue")
    keys = Keys(prefix)
    summary: Any = await redis.xpending(keys.queue, GPU_GROUP)
    assert summary["pending"] == 1  # the hung scene's task, left for another worker
    assert not await redis.exists(keys.lock("wedge-w"))
    second = WorkerProcess(settings, tmp_path / "second.log")
    try:

        async def both_done() -> bool:
            events = await job_events(redis, settings, job_id)
            return sum(isinstance(e, SceneCompleted) for e in events) == 2

        await wait_for(both_done, within=30, what="the second worker to finish both scenes")
    finally:
        assert second.stop() == 0
    events = await job_events(redis, settings, job_id)
    [failed] = [e for e in events if isinstance(e, SceneFailed)]
    assert (failed.scene_id, failed.attempt, failed.will_retry) == ("wedge-w", 1, True)
    assert "StopWorker" in failed.error
    assert [a for _, a, _ in await calls(redis, settings, "ok-after")] == [1]


async def test_a_worker_that_lost_its_claim_is_stopped_and_appends_nothing_more(
    redis: Redis, settings: Settings
) -> None:
    """Another worker takes the entry over (as it does once this one has stalled past the
    backoff): every later write of this delivery is refused at the append layer."""
    keys = Keys(settings.redis_prefix)
    job_id, appended = await enqueue(redis, settings, ["lost-1"])
    entry_id = appended.task_ids[0]
    outcomes: list[str] = []
    started = asyncio.Event()

    async def chatty(ctx: TaskContext) -> Sequence[EventBase]:
        task = ctx.delivery.task
        try:
            for i in range(200):
                try:
                    await ctx.emit(
                        SceneCaptioned(
                            job_id=task.job_id,
                            scene_id=task.scene_id,
                            attempt=ctx.delivery.attempt,
                            model=ModelRef(id="m", profile="test"),
                            caption=f"partial {i}",
                        )
                    )
                    outcomes.append("appended")
                except Fenced:
                    outcomes.append("refused")
                    raise
                started.set()
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            outcomes.append("cancelled")
            raise
        return [SceneCompleted(job_id=task.job_id, scene_id=task.scene_id)]

    lost_before = REGISTRY.get_sample_value("modomo_tasks_lost_total") or 0.0
    async with running(redis, settings, chatty, name="stalled") as worker:
        await asyncio.wait_for(started.wait(), 10)
        claim = redis.register_script(_CLAIM)
        taken = await claim(
            keys=[keys.queue, keys.lock("lost-1")],
            args=[
                GPU_GROUP,
                "rescuer",
                0,
                entry_id,
                lock_token("rescuer", entry_id),
                lock_token(worker.name, entry_id),
                settings.lock_ttl_ms,
            ],
        )
        assert taken, "the rescuer could not claim the entry"
        at_claim = len(await job_events(redis, settings, job_id))

        async def stopped() -> bool:
            return bool(outcomes) and outcomes[-1] in ("refused", "cancelled")

        await wait_for(stopped, within=10, what="the delivery to stop")
        await asyncio.sleep(0.3)  # anything it would still write would land now
    events = await job_events(redis, settings, job_id)
    assert len(events) == at_claim  # nothing appended after the claim moved
    assert not any(isinstance(e, SceneCompleted | SceneFailed) for e in events)
    assert await redis.get(keys.lock("lost-1")) == lock_token("rescuer", entry_id).encode()
    pending: Any = await redis.xpending_range(keys.queue, GPU_GROUP, "-", "+", 10)
    assert [p["consumer"] for p in pending] == [b"rescuer"]
    assert (REGISTRY.get_sample_value("modomo_tasks_lost_total") or 0.0) == lost_before + 1
    assert outcomes.count("appended") >= 1
