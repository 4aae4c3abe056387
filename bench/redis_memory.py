"""Redis memory across a large job and its retention: does anything grow without bound?

    python bench/redis_memory.py [--scenes 10000] [--retention-s 5] [--slots 8]

Starts a redis-server of its own (AOF on, a free port, a temporary folder), measures
``INFO memory`` ``used_memory`` on the empty server, runs one job of ``--scenes`` scenes
through the real streams worker (a trivial handler emitting two stage events per scene, so
each scene writes scene_start, two results and scene_done, as a fast pipeline would),
measures again at ``job_done``, then after the job's retention (its stream and bookkeeping
expire) and the workers' queue trimming, and last after trimming the log below a
checkpoint at its end (what ``modomo trim`` and the projectors' automatic trimming do once
every projector has read it; no projector runs here). Prints one table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from modomo.domain.events import (
    EventBase,
    JobCreated,
    ModelRef,
    SceneClassified,
    SceneCompleted,
    SceneQueued,
    StylesClassified,
)
from modomo.domain.stages import SceneTask
from modomo.logs import configure_logging
from modomo.settings import Settings
from modomo.streams.completion import JobCompletion
from modomo.streams.connection import connect
from modomo.streams.delivery import TaskContext
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog
from modomo.streams.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.faults.servers import RedisServer

MODEL = ModelRef(id="bench-model", profile="tiny", digest="sha256:" + "0" * 64)


async def handler(ctx: TaskContext) -> Sequence[EventBase]:
    """Two small stage results, then scene_done: the shape of a scene's events."""
    task, attempt = ctx.delivery.task, ctx.delivery.attempt
    base = {"job_id": task.job_id, "scene_id": task.scene_id, "attempt": attempt}
    await ctx.emit(SceneClassified(**base, model=MODEL, scene_type="living_room", confidence=0.9))
    await ctx.emit(StylesClassified(**base, model=MODEL, styles=()))
    return [SceneCompleted(**base, objects=3, avg_conf=0.7)]


async def used_memory(redis: Redis) -> int:
    info: Any = await redis.info("memory")
    return int(info["used_memory"])


async def snapshot(redis: Redis, keys: Keys, job_id: str) -> dict[str, int]:
    return {
        "used_memory": await used_memory(redis),
        "keys": int(await redis.dbsize()),
        "log": int(await redis.xlen(keys.events)),
        "queue": int(await redis.xlen(keys.queue)),
        "job_stream": int(await redis.xlen(keys.job_events(job_id))),
    }


async def enqueue(redis: Redis, keys: Keys, scenes: int, retention_s: int) -> str:
    job_id = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(scenes)]
    created = JobCreated(job_id=job_id, dataset_id="bench", scene_ids=tuple(ids))
    queued = [SceneQueued(job_id=job_id, scene_id=s) for s in ids]
    tasks = [
        SceneTask(job_id=job_id, scene_id=s, r2_key_original=f"scenes/{s}.jpg", etag='"e"')
        for s in ids
    ]
    log = EventLog(redis, keys)
    async with redis.pipeline(transaction=True) as pipe:
        await log.stage(pipe, [created, *queued], tasks)
        JobCompletion(redis, keys, 3600, retention_s).stage_total(pipe, job_id, scenes)
        await pipe.execute()
    return job_id


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=10_000)
    parser.add_argument("--retention-s", type=int, default=5)
    parser.add_argument("--slots", type=int, default=8)
    args = parser.parse_args(argv)
    configure_logging(Settings.from_env(log_level="warning", log_format="console"))
    with tempfile.TemporaryDirectory(prefix="modomo-redis-memory-") as folder:
        server = RedisServer(Path(folder))
        server.start()
        try:
            await measure(server.url, args.scenes, args.retention_s, args.slots)
        finally:
            server.stop()


async def measure(url: str, scenes: int, retention_s: int, slots: int) -> None:
    settings = Settings.from_env(
        {},
        redis_url=url,
        redis_prefix="bench",
        job_retention_s=retention_s,
        queue_trim_interval_s=1.0,
        block_ms=100,
        log_format="console",
        log_level="warning",
    )
    keys = Keys(settings.redis_prefix)
    redis = connect(settings)
    rows: list[tuple[str, dict[str, int]]] = []
    try:
        worker = Worker(redis, settings, handler, concurrency=slots, name="bench")
        await worker.queue.ensure_group()
        rows.append(("empty server, group created", await snapshot(redis, keys, "none")))
        job_id = await enqueue(redis, keys, scenes, retention_s)
        rows.append((f"{scenes:,} scenes enqueued", await snapshot(redis, keys, job_id)))
        running = asyncio.create_task(worker.run())
        started = time.perf_counter()
        while not await redis.hexists(keys.job_meta(job_id), "completed"):  # noqa: ASYNC110 - polls Redis
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        rows.append(("at job_done", await snapshot(redis, keys, job_id)))
        deadline = time.monotonic() + retention_s + 30
        while time.monotonic() < deadline and (  # noqa: ASYNC110 - polls Redis
            await redis.exists(keys.job_events(job_id)) or await redis.xlen(keys.queue)
        ):
            await asyncio.sleep(0.5)
        rows.append(
            (
                f"+ retention ({retention_s} s) and queue trimming",
                await snapshot(redis, keys, job_id),
            )
        )
        worker.stop()
        await running
        last: Any = await redis.xrevrange(keys.events, count=1)
        await redis.xtrim(keys.events, minid=last[0][0].decode(), approximate=False)
        await redis.delete(keys.events)  # (an empty stream still holds its metadata)
        rows.append(
            ("+ log trimmed below a checkpoint at its end", await snapshot(redis, keys, job_id))
        )
    finally:
        await redis.aclose()
    print(
        f"\n{scenes:,}-scene job through {slots} worker slots in {elapsed:.1f} s "
        f"({scenes / elapsed:,.0f} scenes/s)\n"
    )
    print(
        f"{'moment':<48} {'used_memory':>12} {'keys':>6} {'log':>8} {'queue':>7} {'job stream':>10}"
    )
    for label, row in rows:
        print(
            f"{label:<48} {row['used_memory'] / 2**20:>9.1f} MiB {row['keys']:>6} "
            f"{row['log']:>8,} {row['queue']:>7,} {row['job_stream']:>10,}"
        )


if __name__ == "__main__":
    asyncio.run(main())
