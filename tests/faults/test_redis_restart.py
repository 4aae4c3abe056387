"""Redis SIGKILLed mid-job and restarted (AOF everysec): the workers ride it out.

Seen before the fix: the worker process exited ("cannot reach Redis") and the job stayed
running with scenes queued until a worker was started by hand.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from modomo.domain.events import JobCompleted, SceneCompleted
from modomo.streams.connection import connect
from modomo.streams.keys import GPU_GROUP, Keys
from modomo.streams.outage import Link, through_outage
from tests.faults.servers import RedisServer
from tests.faults.workers import WorkerProcess
from tests.integration.conftest import fast_settings
from tests.integration.support import enqueue, job_events, wait_for

T = TypeVar("T")


async def patiently(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, waiting through the outage like the workers do (the test's own reads)."""
    return await through_outage(call, Link(), 200, "test read")


async def test_redis_killed_and_restarted_mid_job_every_scene_done_once(
    tmp_path: Path, prefix: str, redis_server: RedisServer
) -> None:
    settings = fast_settings(
        prefix,
        redis_url=redis_server.url,
        retry_backoff_ms=(3000, 6000),
        heartbeat_ms=200,
        lock_ttl_ms=5000,
        redis_retry_max_ms=300,
        queue_trim_interval_s=0.5,
    )
    redis = connect(settings)
    keys = Keys(prefix)
    scenes = [f"slow-{i:02d}" for i in range(32)]
    job_id, _ = await enqueue(redis, settings, scenes, count_scenes=True)
    workers = [
        WorkerProcess(settings, tmp_path / f"worker{i}.log", MODOMO_TEST_SLOW_S="0.25")
        for i in range(2)
    ]

    async def done() -> list[Any]:
        events = await job_events(redis, settings, job_id)
        return [e for e in events if isinstance(e, SceneCompleted)]

    async def pending() -> int:
        summary: Any = await redis.xpending(keys.queue, GPU_GROUP)
        return int(summary["pending"])

    try:

        async def mid_job() -> bool:
            return len(await done()) >= 6 and await pending() >= 1

        await wait_for(mid_job, within=60, what="the job to be under way")
        done_before, pending_before = len(await done()), await pending()
        redis_server.kill()
        await asyncio.sleep(1.5)
        assert all(w.alive for w in workers), "a worker exited when Redis went away"
        redis_server.start()

        async def finished() -> bool:
            events = await patiently(lambda: job_events(redis, settings, job_id))
            return any(isinstance(e, JobCompleted) for e in events)

        await wait_for(finished, within=90, what="the job to end after the restart")
        assert all(w.alive for w in workers), "a worker exited after the restart"
    finally:
        codes = [w.stop() for w in workers]
    await patiently(redis.ping)

    # The kill really interrupted work: scenes were in flight and most were still to do.
    assert pending_before >= 1
    assert 6 <= done_before < len(scenes)
    for worker in workers:
        assert worker.events("redis_unreachable"), worker.log_text()[-2000:]
        assert worker.events("redis_reachable")
    assert codes == [0, 0]
    events = await job_events(redis, settings, job_id)
    completed = Counter(e.scene_id for e in events if isinstance(e, SceneCompleted))
    assert completed == dict.fromkeys(scenes, 1)  # 32 scene_done, none twice
    [end] = [e for e in events if isinstance(e, JobCompleted)]
    assert (end.status, end.ok) == ("succeeded", 32)
    assert await pending() == 0
    await redis.aclose()
