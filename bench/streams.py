"""Throughput of the streams runtime against redis-benchmark, measured in the same run.

    python bench/streams.py [--events 100000] [--redis-url redis://127.0.0.1:6379/0]

Prints one table: each Modomo path in events (or tasks) per second and as a ratio of
``redis-benchmark -P 32 -c 50`` pipelined XADD on the same server, measured first. Speed is
reported as ratios so that runs on different machines compare; nothing here asserts.
Keys live under a fresh ``bench<random>`` prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from redis.asyncio import Redis

from modomo.domain.codec import CODEC
from modomo.domain.events import EventBase, SceneCompleted, SceneStarted
from modomo.domain.stages import SceneTask
from modomo.logs import configure_logging
from modomo.projections.source import stream_after
from modomo.settings import Settings
from modomo.streams.connection import connect
from modomo.streams.delivery import TaskContext
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog
from modomo.streams.worker import Worker


def redis_benchmark(url: str, requests: int) -> float:
    """Pipelined XADD rate of redis-benchmark (``-P 32``, 50 clients) on ``url``."""
    parts = urlsplit(url)
    stream = f"benchref:{uuid.uuid4().hex[:8]}"
    args = [
        "redis-benchmark",
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 6379),
        "-P",
        "32",
        "-c",
        "50",
        "-n",
        str(requests),
        "-q",
    ]
    if parts.password:
        args += ["-a", parts.password]
    out = subprocess.run(
        [*args, "xadd", stream, "*", "f", "v"], capture_output=True, text=True, check=True
    ).stdout
    subprocess.run([*args[:5], "-n", "1", "del", stream], capture_output=True, check=False)
    rates = re.findall(r"([\d.]+) requests per second", out)
    if not rates:
        raise SystemExit(f"could not read redis-benchmark's output: {out!r}")
    return float(rates[-1])


def job_events(count: int, jobs: int = 20) -> list[EventBase]:
    """Scene events spread over ``jobs`` jobs: each goes to the log and its job's stream."""
    out: list[EventBase] = []
    for i in range(count):
        job = f"job-{i % jobs}"
        cls = SceneStarted if i % 2 else SceneCompleted
        out.append(cls(job_id=job, scene_id=f"scene-{i}", attempt=1))
    return out


async def read_log(redis: Redis, keys: Keys, n: int, batch: int) -> None:
    """What a projector does with the log: XREAD in order from a position, decode, until
    ``n`` events are read (the same reader as ``modomo project``)."""
    position, seen = "0-0", 0
    while seen < n:
        entries = await stream_after(redis, keys.events, position, batch)
        for _, payload in entries:
            CODEC.decode(payload)
        seen += len(entries)
        position = entries[-1][0]


async def timed(label: str, count: int, run: Callable[[], Awaitable[None]]) -> tuple[str, float]:
    started = time.perf_counter()
    await run()
    return label, count / (time.perf_counter() - started)


async def append_batches(
    log: EventLog, events: Sequence[EventBase], batch: int, appenders: int
) -> None:
    """``appenders`` concurrent tasks appending ``events`` in batches (as API requests do)."""
    chunks = [events[i : i + batch] for i in range(0, len(events), batch)]

    async def run(share: Sequence[Sequence[EventBase]]) -> None:
        for chunk in share:
            await log.append(chunk)

    await asyncio.gather(*(run(chunks[i::appenders]) for i in range(appenders)))


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--redis-url", default=Settings.from_env().redis_url)
    args = parser.parse_args(argv)
    n, batch = args.events, args.batch

    configure_logging(Settings.from_env(log_level="warning"))
    reference = redis_benchmark(args.redis_url, max(n * 2, 200_000))
    settings = Settings.from_env(
        redis_url=args.redis_url, redis_prefix=f"bench{uuid.uuid4().hex[:8]}", block_ms=50
    )
    keys = Keys(settings.redis_prefix)
    redis = connect(settings)
    log = EventLog(redis, keys)
    rows: list[tuple[str, float]] = []
    try:
        single = job_events(min(n, 10_000))

        async def append_single() -> None:
            for event in single:
                await log.append([event])

        rows.append(await timed("append, one event per call (awaited)", len(single), append_single))
        events = job_events(n)
        for appenders in (1, 2):
            rows.append(
                await timed(
                    f"append, {batch} events per call (log + job stream), {appenders} appender(s)",
                    n,
                    lambda a=appenders: append_batches(log, events, batch, a),
                )
            )

        tasks = [
            SceneTask(job_id="job", scene_id=f"s{i}", r2_key_original=f"scenes/s{i}.jpg")
            for i in range(n)
        ]
        await redis.delete(keys.events)
        await append_batches(log, events, batch, 1)
        rows.append(
            await timed(
                f"read the log in order + decode (as a projector), batches of {batch}",
                n,
                lambda: read_log(redis, keys, n, batch),
            )
        )

        worker_n = min(n, 2_000)
        await log.append([], tasks[:worker_n])

        async def handler(ctx: TaskContext) -> Sequence[EventBase]:
            task = ctx.delivery.task
            return [SceneCompleted(job_id=task.job_id, scene_id=task.scene_id)]

        worker = Worker(redis, settings, handler, concurrency=4)

        async def work() -> None:
            running = asyncio.create_task(worker.run())
            while True:
                info = (await redis.xinfo_groups(keys.queue))[0]
                if info["lag"] == 0 and info["pending"] == 0:
                    break
                await asyncio.sleep(0.02)
            worker.stop()
            await running

        await worker.queue.ensure_group()
        rows.append(
            await timed(
                "scene worker, full path (lock, done set, 4 events), 4 slots", worker_n, work
            )
        )
    finally:
        found = [key async for key in redis.scan_iter(match=f"{settings.redis_prefix}:*")]
        if found:
            await redis.delete(*found)
        await redis.aclose()

    width = max(len(label) for label, _ in rows)
    print(f"\nredis-benchmark XADD -P 32 -c 50: {reference:,.0f} entries/s (the baseline)\n")
    print(f"{'path':<{width}}  {'per second':>12}  {'vs baseline':>11}")
    for label, rate in rows:
        print(f"{label:<{width}}  {rate:>12,.0f}  {rate / reference:>10.1%}")
    print(
        "\nappend counts events; each event is 2 XADDs (the log and its job stream), all of "
        "one call in one atomic script."
    )


if __name__ == "__main__":
    asyncio.run(main())
