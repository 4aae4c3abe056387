"""Chaos run: one job through the whole product while its parts are killed at random.

:func:`run_chaos` starts a Modomo of its own (Redis with AOF, a PostgreSQL cluster and
SeaweedFS on free ports, the API, the projectors and one tiny-profile GPU worker under the
:class:`~modomo.demo.supervisor.Supervisor`), uploads synthetic rooms plus a few planted bad
inputs through the API, starts a job and, as it runs, SIGKILLs the worker and the
projectors (the supervisor restarts them) and SIGKILLs Redis, PostgreSQL and SeaweedFS and
starts them again. Each fault fires once a seeded share of the scenes is done, after a
seeded pause, as a task of its own (faults may overlap), and the time until work visibly
resumed after it is recorded. At the end
:mod:`modomo.demo.chaos_checks` checks the invariants and :class:`ChaosReport` prints them.

``bench/chaos.py`` is the command; ``tests/faults/test_chaos.py`` runs it small.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from modomo.api.auth import issue_token
from modomo.demo import procs
from modomo.demo.chaos_checks import check, wait_projected
from modomo.demo.chaos_plan import (
    ChaosPlan,
    ChaosReport,
    Fault,
    FaultRecord,
    planted,
    schedule,
)
from modomo.demo.pgservers import PostgresCluster
from modomo.demo.run import submit
from modomo.demo.servers import ACCESS_KEY, SECRET_KEY, RedisServer, SeaweedFS
from modomo.demo.services import free_port, modomo_child, wait_ready
from modomo.demo.supervisor import CrashLoop, Supervisor
from modomo.domain.codec import CODEC
from modomo.domain.events import JobCompleted, SceneCompleted, SceneDeadLettered
from modomo.projections import db
from modomo.projections.migrate import migrate
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.streams.keys import EVENT_FIELD, GPU_GROUP, Keys
from modomo.synthetic.rooms import room


class Progress:
    """The job as its Redis stream tells it, read incrementally; keeps the last known
    counts while Redis is down."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        job_id: str,
        settings: Settings,
        say: Callable[[str], None],
    ) -> None:
        self.say = say
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.stream = keys.job_events(job_id)
        self.last = "-"
        self.done = 0
        self.dead = 0
        self.ended = False
        self.projected = 0
        """Events the slowest projector has folded (the archive included)."""
        self.polled_at = 0.0
        """When the latest reading began (monotonic)."""
        self._conn: asyncpg.Connection[Any] | None = None

    async def poll(self) -> None:
        self.polled_at = time.monotonic()
        await self._poll_stream()
        await self._poll_projectors()

    async def _poll_projectors(self) -> None:
        try:
            if self._conn is None:
                self._conn = await db.connect(self.settings, pooled=True)
            async with db.transaction(self._conn):
                seen = await self._conn.fetchval(
                    "SELECT min(events_seen) FROM (SELECT events_seen FROM projector_checkpoints"
                    " UNION ALL SELECT events_seen FROM log_checkpoints) c",
                    timeout=5,
                )
            self.projected = int(seen or 0)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            await self.close()

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):  # a connection to a dead server: let it go
                await asyncio.wait_for(conn.close(), 2)

    async def _poll_stream(self) -> None:
        with contextlib.suppress(OSError, RedisError):
            start = "-" if self.last == "-" else f"({self.last}"
            rows: Any = await self.redis.xrange(self.stream, start, "+", count=1000)
            for entry_id, fields in rows:
                event = CODEC.decode(fields[EVENT_FIELD])
                self.done += isinstance(event, SceneCompleted)
                self.dead += isinstance(event, SceneDeadLettered)
                self.ended |= isinstance(event, JobCompleted)
                self.last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id

    async def in_flight(self) -> int | None:
        with contextlib.suppress(OSError, RedisError):
            summary: Any = await self.redis.xpending(self.keys.queue, GPU_GROUP)
            return int(summary["pending"])
        return None


class _Servers:
    """Redis, PostgreSQL and SeaweedFS of the run's own; every pid they ever had."""

    def __init__(self, state: Path) -> None:
        self.redis = RedisServer(state / "redis")
        self.s3 = SeaweedFS(state / "s3")
        self.postgres: PostgresCluster | None = None
        self.pids: set[int] = set()

    def start(self) -> None:
        self.redis.start()
        self.s3.start()
        self.postgres = PostgresCluster()
        self.remember()

    def remember(self) -> None:
        for server in (self.redis, self.s3):
            if server.proc is not None:
                self.pids.add(server.proc.pid)
        if self.postgres is not None and (pid := self.postgres.postmaster_pid()) is not None:
            self.pids.add(pid)

    def close(self) -> None:
        self.redis.stop()
        self.s3.stop()
        if self.postgres is not None:
            self.postgres.close()


def _settings(servers: _Servers, plan: ChaosPlan) -> Settings:
    assert servers.postgres is not None
    prefix = f"chaos{secrets.token_hex(4)}"
    return Settings.from_env(
        redis_url=servers.redis.url,
        redis_prefix=prefix,
        database_url=servers.postgres.url,
        db_schema="modomo",
        db_log_schema="modomo_log",
        s3_endpoint_url=servers.s3.endpoint,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
        s3_bucket=prefix,
        api_port=free_port(),
        worker_http_port=free_port(),
        metrics_port=free_port(),
        model_profile="tiny",
        model_dir=str(plan.state / "models"),
        log_format="json",
        log_level="info",
    )


async def _inject(fault: Fault, servers: _Servers, supervisor: Supervisor) -> None:
    if fault.kind in ("worker", "projector"):
        child = supervisor.children["worker" if fault.kind == "worker" else "projectors"]
        assert child.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # its group leader is the child itself
        return
    kill: Callable[[], None]
    start: Callable[[], None]
    if fault.kind == "redis":
        kill, start = servers.redis.kill, servers.redis.start
    elif fault.kind == "s3":
        kill, start = servers.s3.kill, servers.s3.start
    else:
        assert servers.postgres is not None
        kill, start = servers.postgres.kill, servers.postgres.start
    await asyncio.to_thread(kill)
    await asyncio.sleep(fault.down_s)
    await asyncio.to_thread(start)
    servers.remember()


@contextlib.asynccontextmanager
async def _stack(settings: Settings, state: Path) -> AsyncIterator[tuple[str, Supervisor]]:
    supervisor = Supervisor(
        max_restarts=settings.supervisor_max_restarts, window_s=settings.supervisor_window_s
    )
    try:
        api = await supervisor.start(modomo_child("api", ["api"], settings, state))
        await supervisor.start(modomo_child("projectors", ["project"], settings, state))
        await supervisor.start(
            modomo_child("worker", ["worker"], settings, state, {"MODOMO_WORKER_IDLE_EXIT_S": "0"})
        )
        base = f"http://{settings.api_host}:{settings.api_port}"
        await wait_ready(f"{base}/health", api, "the API", supervisor)
        yield base, supervisor
    finally:
        await supervisor.stop()


def _photos(plan: ChaosPlan) -> tuple[list[tuple[str, bytes]], set[str]]:
    bad = planted(plan.seed, plan.scenes)
    photos = [
        bad.get(i) or (f"room-{i:04d}.jpg", room(plan.seed * 100_000 + i, *plan.size))
        for i in range(plan.scenes)
    ]
    return photos, {name for name, _ in bad.values()}


async def run_chaos(plan: ChaosPlan, say: Callable[[str], None] = print) -> ChaosReport:
    """Run the job under faults; the report (see :attr:`ChaosReport.failures`)."""
    started = time.monotonic()
    plan.state.mkdir(parents=True, exist_ok=True)
    photos, bad_names = await asyncio.to_thread(_photos, plan)
    servers = _Servers(plan.state)
    groups: set[int] = set()
    records: list[FaultRecord] = []
    restarts: dict[str, int] = {}
    crash_loop = ""
    settings: Settings | None = None
    try:
        await asyncio.to_thread(servers.start)
        settings = _settings(servers, plan)
        conn = await db.connect(settings, pooled=True)
        try:
            await migrate(conn, settings.db_schema, settings.db_log_schema)
        finally:
            await conn.close()
        async with Storage.open(settings) as storage:
            await storage.ensure_bucket(settings.browser_origins)
        say(f"servers up under {plan.state}; prefix {settings.redis_prefix}")
        redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=1)
        try:
            async with _stack(settings, plan.state) as (base, supervisor):
                token = issue_token(settings.jwt_secret, "chaos", "admin", 3600)
                async with httpx.AsyncClient(
                    base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"}
                ) as client:
                    _, job_id, scene_ids = await submit(
                        client, photos, f"chaos seed {plan.seed}", "bench/chaos.py"
                    )
                say(f"job {job_id}: {plan.scenes} scenes, {len(bad_names)} planted bad inputs")
                progress = Progress(redis, Keys(settings.redis_prefix), job_id, settings, say)
                faults = schedule(plan.seed, plan.scenes - len(bad_names), plan.rounds)
                try:
                    await _drive(plan, progress, faults, servers, supervisor, records, groups, say)
                except CrashLoop as exc:  # reported; the checks still run
                    crash_loop = str(exc)
                    say(f"the run broke: {exc}")
                finally:
                    await progress.close()
                restarts = {c.name: c.restarts for c in supervisor.children.values()}
                if progress.ended:
                    await wait_projected(settings, redis, within_s=120)
                verdict = await check(
                    settings,
                    redis,
                    job_id,
                    {scene_ids[name] for name in bad_names},
                    set(scene_ids.values()),
                    progress.ended,
                )
                groups |= {c.pid for c in supervisor.children.values() if c.pid is not None}
        finally:
            await redis.aclose()
    finally:
        await asyncio.to_thread(servers.close)
    orphans = _orphans(settings, groups, servers.pids)
    return ChaosReport(
        plan, verdict, records, restarts, time.monotonic() - started, orphans, crash_loop
    )


async def _drive(
    plan: ChaosPlan,
    progress: Progress,
    faults: list[Fault],
    servers: _Servers,
    supervisor: Supervisor,
    records: list[FaultRecord],
    groups: set[int],
    say: Callable[[str], None],
) -> None:
    """Inject ``faults`` as the job reaches their marks, then wait for the job to end.

    Each fault runs as a task of its own, so a server that takes seconds to restart does
    not hold the next fault back while the job moves on (faults may overlap); each one's
    resumption is timed on its own. Every task has finished when this returns, so every
    server is up again for the checks."""
    started = time.monotonic()
    deadline = started + plan.within_s
    pending = list(faults)
    waiting: list[FaultRecord] = []
    strikes: list[asyncio.Task[None]] = []
    try:
        while time.monotonic() < deadline:
            supervisor.check()
            groups |= {c.pid for c in supervisor.children.values() if c.pid is not None}
            await progress.poll()
            now = time.monotonic() - started
            for record in list(waiting):
                if record.done_restored is None or record.projected_restored is None:
                    if progress.polled_at > record.over_at:
                        record.done_restored = progress.done
                        record.projected_restored = progress.projected
                    continue
                if (
                    progress.done > record.done_restored
                    and progress.projected > record.projected_restored
                ):
                    record.done_after = progress.done
                    record.resumed_s = now - record.at_s
                    say(f"  work resumed {record.resumed_s:.1f} s after the {record.kind} fault")
                    waiting.remove(record)
            if any(now - record.at_s > plan.resume_within_s for record in waiting):
                return  # stalled: the report says so
            busy = any(not task.done() for task in strikes)
            if progress.ended and not waiting and not busy:
                return
            while pending and not progress.ended and progress.done >= pending[0].after_done:
                fault = pending.pop(0)
                strike = _strike(fault, progress, servers, supervisor, started, records, waiting)
                strikes.append(asyncio.create_task(strike))
            await asyncio.sleep(0.25)
    finally:
        await asyncio.gather(*strikes)


async def _strike(
    fault: Fault,
    progress: Progress,
    servers: _Servers,
    supervisor: Supervisor,
    started: float,
    records: list[FaultRecord],
    waiting: list[FaultRecord],
) -> None:
    await asyncio.sleep(fault.pause_s)
    if fault.kind == "worker":
        # Mid-scene, never in the instant between two: a delivery must be pending.
        for _ in range(40):
            if (await progress.in_flight() or 0) >= 1:
                break
            await asyncio.sleep(0.25)
    if progress.ended:
        progress.say(f"  {fault.kind}: not injected, the job had ended")
        return
    record = FaultRecord(
        fault.kind, time.monotonic() - started, progress.done, await progress.in_flight()
    )
    records.append(record)
    progress.say(f"  {fault.kind}: SIGKILL with {progress.done} scenes done")
    await _inject(fault, servers, supervisor)
    # Work resumed means more done than the first reading taken once the fault was over (a
    # scene that finished while the server was going down proves nothing).
    record.over_at = time.monotonic()
    waiting.append(record)


def _orphans(settings: Settings | None, groups: set[int], server_pids: set[int]) -> list[int]:
    """Processes of the run still alive after its shutdown: the children's process groups,
    anything started with the run's settings, the servers."""
    found = set(procs.in_groups(groups)) | set(procs.alive(server_pids))
    if settings is not None:
        found |= set(procs.with_env("MODOMO_REDIS_PREFIX", settings.redis_prefix))
    return sorted(found)
