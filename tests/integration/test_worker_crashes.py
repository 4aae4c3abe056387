"""Workers that die, stall, race or are told to stop, as real processes."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import pytest
from redis.asyncio import Redis

from modomo.domain.events import SceneCompleted, SceneFailed, SceneStarted
from modomo.domain.fold import fold_job
from modomo.settings import Settings
from modomo.streams.dead import DeadLetters
from modomo.streams.keys import Keys
from modomo.streams.queue import TaskQueue
from tests.integration.handlers import behave
from tests.integration.support import (
    calls,
    enqueue,
    job_events,
    running,
    spawn_worker,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.integration


async def _completed(redis: Redis, settings: Settings, job_id: str, scene: str) -> int:
    events = await job_events(redis, settings, job_id)
    return sum(1 for e in events if isinstance(e, SceneCompleted) and e.scene_id == scene)


async def test_worker_killed_mid_task_is_taken_over_after_claim_timeout(
    redis: Redis, settings: Settings
) -> None:
    job_id, _ = await enqueue(redis, settings, ["slow-k"])
    first = spawn_worker(settings, MODOMO_TEST_SLOW_S="30")
    try:

        async def started() -> bool:
            return len(await calls(redis, settings, "slow-k")) == 1

        await wait_for(started, what="the first worker to start the task")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = spawn_worker(settings, MODOMO_TEST_SLOW_S="0.05")
        try:

            async def done() -> bool:
                return await _completed(redis, settings, job_id, "slow-k") == 1

            await wait_for(done, what="the second worker to finish the task")
        finally:
            stop_process(second)
    finally:
        stop_process(first)

    seen = await calls(redis, settings, "slow-k")
    assert [a for _, a, _ in seen] == [1, 2]
    assert seen[0][2] == first.pid
    assert seen[1][2] == second.pid
    assert seen[1][0] - seen[0][0] >= settings.retry_backoff_ms[0] / 1000
    events = await job_events(redis, settings, job_id)
    [failed] = [e for e in events if isinstance(e, SceneFailed)]
    assert failed.attempt == 1
    assert failed.will_retry
    assert "stopped responding" in failed.error
    assert (await TaskQueue(redis, Keys(settings.redis_prefix)).stats()).pending == 0


async def test_poison_task_is_dead_after_three_deliveries_and_others_complete(
    redis: Redis, settings: Settings
) -> None:
    scenes = ["poison-p", *(f"ok-{i}" for i in range(5))]
    job_id, _ = await enqueue(redis, settings, scenes)
    dead = DeadLetters(redis, Keys(settings.redis_prefix))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(8):
            proc = spawn_worker(settings)
            procs.append(proc)
            while proc.poll() is None:
                if await dead.oldest():
                    break
                await asyncio.sleep(0.05)
            if await dead.oldest():
                break

        async def rest_done() -> bool:
            state = fold_job(await job_events(redis, settings, job_id))
            return state is not None and state.summary().done == len(scenes)

        await wait_for(rest_done, what="the tasks behind the poison one")
    finally:
        for proc in procs:
            stop_process(proc)

    assert len(await calls(redis, settings, "poison-p")) == 3
    killed = [p for p in procs if p.returncode == -signal.SIGKILL]
    assert len(killed) == 3
    [item] = await dead.oldest()
    assert item.scene_id == "poison-p"
    assert item.attempts == 3
    assert [e.attempt for e in item.errors] == [1, 2, 3]
    assert all("stopped responding" in e.error for e in item.errors)
    state = fold_job(await job_events(redis, settings, job_id))
    assert state is not None
    summary = state.summary()
    assert (summary.ok, summary.failed, summary.status) == (5, 1, "partial")
    assert (await TaskQueue(redis, Keys(settings.redis_prefix)).stats()).pending == 0


async def test_two_consumers_racing_for_one_scene_do_the_work_once(
    redis: Redis, settings: Settings
) -> None:
    job_id, _ = await enqueue(redis, settings, ["slow-dup"])
    # The same scene enqueued a second time for the same job (a retried request, say).
    _, _again = await enqueue(redis, settings, ["slow-dup"], job_id=job_id)
    async with (
        running(redis, settings, behave, name="a"),
        running(redis, settings, behave, name="b"),
    ):

        async def both_acked() -> bool:
            stats = await TaskQueue(redis, Keys(settings.redis_prefix)).stats()
            done = await _completed(redis, settings, job_id, "slow-dup")
            return done == 1 and stats.pending == 0 and stats.length == 2

        await wait_for(both_acked, what="both entries to be acked")
        await asyncio.sleep(0.3)

    assert len(await calls(redis, settings, "slow-dup")) == 1
    events = await job_events(redis, settings, job_id)
    assert sum(isinstance(e, SceneStarted) for e in events) == 1
    assert await _completed(redis, settings, job_id, "slow-dup") == 1


async def test_stalled_worker_loses_its_scene_and_appends_nothing_more(
    redis: Redis, settings: Settings
) -> None:
    """A worker whose loop stalls past the backoff loses the claim and the lock together;
    when it wakes up its finished result is refused: the rescuer's run is the only one."""
    job_id, _ = await enqueue(redis, settings, ["block-s"])
    stalled = spawn_worker(settings, MODOMO_TEST_BLOCK_S="1.5")
    try:

        async def picked() -> bool:
            return len(await calls(redis, settings, "block-s")) == 1

        await wait_for(picked, what="the stalling worker to start")
        async with running(redis, settings, behave, name="rescuer"):

            async def acked() -> bool:
                stats = await TaskQueue(redis, Keys(settings.redis_prefix)).stats()
                return (
                    stats.pending == 0 and await _completed(redis, settings, job_id, "block-s") == 1
                )

            await wait_for(acked, what="the stalled task to finish")
            await asyncio.sleep(0.5)
        # Its heartbeat was mid-command when the task ended: it must still stop cleanly.
        stalled.terminate()
        code = await asyncio.to_thread(stalled.wait, 5)
    finally:
        stop_process(stalled)
    assert code == 0
    seen = await calls(redis, settings, "block-s")
    assert [(attempt, pid) for _, attempt, pid in seen] == [(1, stalled.pid), (2, seen[1][2])]
    assert seen[1][2] != stalled.pid
    events = await job_events(redis, settings, job_id)
    assert [type(e).__name__ for e in events if getattr(e, "scene_id", None) == "block-s"] == [
        "SceneStarted",  # the stalled worker, attempt 1
        "SceneFailed",  # "stopped responding", recorded by the rescuer
        "SceneStarted",  # the rescuer, attempt 2
        "SceneCompleted",  # the rescuer's: the stalled worker's own result was refused
    ]
    [done] = [e for e in events if isinstance(e, SceneCompleted)]
    assert done.attempt == 2


async def test_sigterm_finishes_the_running_task_and_reads_nothing_new(
    redis: Redis, settings: Settings
) -> None:
    scenes = ["slow-term", "ok-left-1", "ok-left-2"]
    job_id, _ = await enqueue(redis, settings, scenes)
    proc = spawn_worker(settings, MODOMO_TEST_SLOW_S="1.0")
    try:

        async def started() -> bool:
            return len(await calls(redis, settings, "slow-term")) == 1

        await wait_for(started, what="the task to start")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 15)
    finally:
        stop_process(proc)
    assert code == 0
    assert await _completed(redis, settings, job_id, "slow-term") == 1
    for scene in scenes[1:]:
        assert await calls(redis, settings, scene) == []
    stats = await TaskQueue(redis, Keys(settings.redis_prefix)).stats()
    assert stats.pending == 0
    assert stats.length == 3
