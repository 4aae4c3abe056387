"""API latency and SSE fan-out, with the API in its own process and the load in this one.

    python bench/api.py [--requests 2000] [--concurrency 16] [--sse-clients 1000]

1. A synthetic log is projected into read models of its own (schemas and key prefix made
   for the run, dropped at the end), then ``modomo api`` starts as a separate process.
2. ``GET /scenes/:id`` and ``GET /jobs/:id`` at fixed concurrency: requests/s, p50, p99.
3. SSE fan-out: N clients follow one job; events are appended one by one and each
   client's delay from append to receipt is measured; the API's memory and the Redis
   connection count are read before and with the clients connected.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
from scratch import clean, scratch_settings

from modomo.api.auth import issue_token
from modomo.demo.services import free_port, settings_env
from modomo.domain.events import JobCreated, SceneStarted
from modomo.projections.migrate import migrate
from modomo.projections.registry import select
from modomo.projections.runner import ProjectorRunner
from modomo.settings import Settings
from modomo.streams.connection import connect
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog
from modomo.synthetic.log import synthetic_log

ROOT = Path(__file__).resolve().parents[1]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _project(settings: Settings, last: str) -> None:
    redis = connect(settings)
    runners = [ProjectorRunner(settings, redis, p, lease_poll_s=0.05) for p in select(None)]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    conn = await asyncpg.connect(settings.database_url)
    try:
        while True:
            rows = await conn.fetch(
                f'SELECT position FROM "{settings.db_schema}".projector_checkpoints'
            )
            if len(rows) == len(runners) - 1 and all(r["position"] == last for r in rows):
                return
            await asyncio.sleep(0.05)
    finally:
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks)
        await conn.close()
        await redis.aclose()


async def _load(
    client: httpx.AsyncClient, paths: list[str], concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(paths)

    async def user() -> None:
        while queue:
            path = queue.pop()
            started = time.perf_counter()
            response = await client.get(path)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    return len(paths) / (time.perf_counter() - started), latencies


class _Stamp(msgspec.Struct):
    type: str
    at: datetime


_stamp = msgspec.json.Decoder(_Stamp)


async def _sse_fanout(
    port: int,
    token: str,
    redis: Any,
    keys: Keys,
    job_id: str,
    clients: int,
    events: int,
    settle_s: float = 5.0,
) -> dict[str, float]:
    """``clients`` plain-socket SSE readers (lighter than an HTTP library, so the client
    side disturbs the measurement less), then ``events`` appends, 100 ms apart."""
    delays: list[float] = []
    ready = 0
    connected = asyncio.Event()
    request = (
        f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()

    async def follow() -> None:
        nonlocal ready
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(request)
        await writer.drain()
        seen = 0
        try:
            while True:
                line = await reader.readline()
                if not line:
                    raise RuntimeError("the API closed an SSE stream")
                if line.startswith(b"HTTP/1.1 200"):
                    ready += 1
                    if ready == clients:
                        connected.set()
                elif line.startswith(b"data:") and b'"scene_start"' in line:
                    stamp = _stamp.decode(line[5:].strip())
                    delays.append((datetime.now(UTC) - stamp.at).total_seconds() * 1000)
                    seen += 1
                    if seen == events:
                        return
        finally:
            writer.close()

    followers = [asyncio.create_task(follow()) for _ in range(clients)]
    await asyncio.wait_for(connected.wait(), 120)
    await asyncio.sleep(settle_s)
    log = EventLog(redis, keys)
    for n in range(events):
        await log.append([SceneStarted(job_id=job_id, scene_id=f"s{n}", attempt=1)])
        await asyncio.sleep(0.1)
    await asyncio.wait_for(asyncio.gather(*followers), 120)
    return {
        "p50": _percentile(delays, 0.5),
        "p99": _percentile(delays, 0.99),
        "received": len(delays),
        "expected": clients * events,
    }


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sse-clients", type=int, default=1000)
    parser.add_argument("--sse-events", type=int, default=20)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    settings = scratch_settings(
        database_url=args.database_url, api_port=free_port(), jwt_secret="b" * 40, log_format="json"
    )
    keys = Keys(settings.redis_prefix)
    redis = connect(settings)
    admin = await asyncpg.connect(settings.database_url)
    api: subprocess.Popen[bytes] | None = None
    try:
        await migrate(admin, settings.db_schema, settings.db_log_schema)
        events = synthetic_log(3, 300)
        log = EventLog(redis, keys)
        last = "0-0"
        for start in range(0, len(events), 1000):
            last = (await log.append(events[start : start + 1000])).log_ids[-1]
        await _project(settings, last)
        scene_ids = [
            r["scene_id"]
            for r in await admin.fetch(f'SELECT scene_id FROM "{settings.db_schema}".scenes')
        ]
        job_ids = [e.job_id for e in events if isinstance(e, JobCreated)]
        # An open job (no scene ever ends) for the SSE clients to follow.
        sse_job = str(uuid.uuid4())
        await log.append([JobCreated(job_id=sse_job, dataset_id="d", scene_ids=("x",))])

        env = settings_env(settings)
        api = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
            [sys.executable, "-m", "modomo.cli", "api"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open("/tmp/api_bench.log", "w"),  # noqa: SIM115, ASYNC230
        )
        token = issue_token(settings.jwt_secret, "bench", "viewer", 3600)
        limits = httpx.Limits(
            max_connections=args.sse_clients + 100, max_keepalive_connections=args.sse_clients + 100
        )
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{settings.api_port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
            limits=limits,
        ) as client:
            for _ in range(200):
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            rng = random.Random(1)
            rows = []
            for label, pool in (
                ("GET /scenes/:id", [f"/scenes/{s}" for s in scene_ids]),
                ("GET /jobs/:id", [f"/jobs/{j}" for j in job_ids]),
            ):
                paths = [rng.choice(pool) for _ in range(args.requests)]
                await _load(client, paths[:100], args.concurrency)  # warm up
                rate, latencies = await _load(client, paths, args.concurrency)
                rows.append(
                    (label, rate, _percentile(latencies, 0.5), _percentile(latencies, 0.99))
                )
            rss_before = _rss_mb(api.pid)
            redis_before = len(await redis.client_list())
            fan = await _sse_fanout(
                settings.api_port, token, redis, keys, sse_job, args.sse_clients, args.sse_events
            )
            rss_with = _rss_mb(api.pid)
            redis_with = len(await redis.client_list())
    finally:
        if api is not None:
            api.send_signal(signal.SIGTERM)
            try:
                api.wait(15)
            except subprocess.TimeoutExpired:
                api.kill()
        await clean(settings, redis, admin)

    print(
        f"\nREST, {args.requests} requests at concurrency {args.concurrency} "
        "(load generator in a second process on loopback)\n"
    )
    print(f"{'route':<16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for label, rate, p50, p99 in rows:
        print(f"{label:<16} {rate:>8,.0f} {p50:>8.1f} {p99:>8.1f}")
    print(f"\nSSE fan-out: {args.sse_clients} clients on one job, {args.sse_events} events\n")
    print(
        f"delivered {fan['received']:,.0f} of {fan['expected']:,.0f}; "
        f"append-to-receipt p50 {fan['p50']:.1f} ms, p99 {fan['p99']:.1f} ms"
    )
    print(
        f"API memory {rss_before:.0f} MB before, {rss_with:.0f} MB with the clients; "
        f"Redis connections {redis_before} before, {redis_with} with the clients"
    )


if __name__ == "__main__":
    asyncio.run(main())
