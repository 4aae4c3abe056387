"""Chaos run: one job through the whole product while its parts are killed at random.

:func:`run_chaos` starts a Modomo of its own (Redis with AOF, a PostgreSQL cluster and
SeaweedFS on free ports, the API, the projectors and one tiny-profile GPU worker under the
:class:`~modomo.demo.supervisor.Supervisor`), uploads synthetic rooms plus a few planted bad
inputs through the API, starts a job and, as it runs, SIGKILLs the worker and the
projectors (the supervisor restarts them) and SIGKILLs Redis, PostgreSQL and SeaweedFS and
starts them again. Each fault fires once a seeded share of the scenes is done, after a
seeded pause, and the next waits until work visibly resumed. At the end
:mod:`modomo.demo.chaos_checks` checks the invariants and :class:`ChaosReport` prints them.

``bench/chaos.py`` is the command; ``tests/faults/test_chaos.py`` runs it small.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from modomo.api.auth import issue_token
from modomo.demo import procs
from modomo.demo.chaos_checks import Verdict, check, wait_projected
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

FAULTS = ("worker", "projector", "redis", "postgres", "s3")
"""Every kind of fault, each injected ``rounds`` times per run."""


@dataclass(frozen=True, slots=True)
class ChaosPlan:
    """What a run does; the same seed gives the same inputs and the same fault schedule."""

    state: Path
    scenes: int = 200
    seed: int = 1
    rounds: int = 1
    """How many times each kind of fault is injected."""
    size: tuple[int, int] = (1024, 768)
    """Width and height of the synthetic rooms."""
    within_s: float = 900.0
    """How long the job may take before the run gives up on it."""
    resume_within_s: float = 240.0
    """How long work may stay stalled after a fault."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled fault: its kind, the number of scenes done that arms it, the pause
    after that and, for the servers, how long they stay down."""

    kind: str
    after_done: int
    pause_s: float
    down_s: float


@dataclass(slots=True)
class FaultRecord:
    """What happened at one fault (``resumed_s`` None: work never resumed)."""

    kind: str
    at_s: float
    done_before: int
    in_flight: int | None
    """Tasks delivered and not yet acknowledged when it struck (None: not readable)."""
    done_after: int = 0
    resumed_s: float | None = None


def planted(seed: int, scenes: int) -> dict[int, tuple[str, bytes]]:
    """The bad inputs, by position in the job: a text file and a truncated JPEG, both sent
    as ``image/jpeg``."""
    rng = random.Random(f"planted-{seed}")
    text, cut = rng.sample(range(scenes), 2)
    whole = room(seed + 10_000, 320, 240)
    return {
        text: ("notes.jpg", b"this is a shopping list, not a photo\n" * 20),
        cut: ("truncated.jpg", whole[: len(whole) // 2]),
    }


def schedule(seed: int, good: int, rounds: int = 1) -> list[Fault]:
    """Each fault kind ``rounds`` times, in a seeded order, armed at distinct seeded
    counts of scenes done between about 5 % and 85 % of ``good``."""
    rng = random.Random(f"faults-{seed}")
    kinds = [kind for _ in range(rounds) for kind in rng.sample(FAULTS, len(FAULTS))]
    low, high = max(1, good // 20), max(int(good * 0.85), len(kinds) + 1)
    marks = sorted(rng.sample(range(low, min(high, good - 1) + 1), len(kinds)))
    return [
        Fault(kind, mark, round(rng.uniform(0.0, 1.5), 2), round(rng.uniform(1.0, 3.0), 2))
        for kind, mark in zip(kinds, marks, strict=True)
    ]


class Progress:
    """The job as its Redis stream tells it, read incrementally; keeps the last known
    counts while Redis is down."""

    def __init__(self, redis: Redis, keys: Keys, job_id: str) -> None:
        self.redis = redis
        self.keys = keys
        self.stream = keys.job_events(job_id)
        self.last = "-"
        self.done = 0
        self.dead = 0
        self.ended = False

    async def poll(self) -> None:
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


@dataclass(slots=True)
class ChaosReport:
    """The run's outcome: the invariants, the faults, the wall time."""

    plan: ChaosPlan
    verdict: Verdict
    faults: list[FaultRecord]
    restarts: dict[str, int]
    wall_s: float
    orphans: list[int] = field(default_factory=list)
    crash_loop: str = ""

    @property
    def operator_actions(self) -> int:
        return self.verdict.operator_actions + (1 if self.crash_loop else 0)

    @property
    def failures(self) -> list[str]:
        """Each invariant that does not hold, in a sentence."""
        out = list(self.verdict.failures)
        if len(self.faults) != len(FAULTS) * self.plan.rounds:
            out.append(f"only {len(self.faults)} faults were injected")
        for fault in self.faults:
            if not 0 < fault.done_before < self.verdict.good:
                out.append(f"the {fault.kind} fault struck outside the job's work")
            if fault.resumed_s is None:
                out.append(f"work never resumed after the {fault.kind} fault")
        if self.orphans:
            out.append(f"processes left behind: {self.orphans}")
        if self.crash_loop:
            out.append(self.crash_loop)
        return out

    def table(self) -> str:
        v = self.verdict
        rows = [
            ("scenes done exactly once", f"{v.done_once}/{v.good}"),
            (
                "scenes dead (expected: only the planted bad inputs)",
                f"{len(v.dead)} ({'only the planted' if v.dead == v.planted else 'NOT the planted'}"
                f" {len(v.planted)})",
            ),
            ("events lost", str(v.events_lost)),
            ("read models equal to a fresh replay of the log", "yes" if v.replay_equal else "NO"),
            ("orphan processes", str(len(self.orphans))),
            ("operator actions needed", str(self.operator_actions)),
            ("wall time", f"{self.wall_s:.0f} s"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"chaos run: {self.plan.scenes} scenes, seed {self.plan.seed}", ""]
        lines += [f"| {'invariant':<{width}} | result |", f"|{'-' * (width + 2)}|--------|"]
        lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
        lines += ["", "| fault | at s | scenes done | in flight | work resumed after |"]
        lines += ["|-------|------|-------------|-----------|--------------------|"]
        for f in self.faults:
            resumed = f"{f.resumed_s:.1f} s" if f.resumed_s is not None else "never"
            flight = "?" if f.in_flight is None else str(f.in_flight)
            lines.append(
                f"| {f.kind} | {f.at_s:.0f} | {f.done_before} -> {f.done_after} | {flight} "
                f"| {resumed} |"
            )
        restarts = ", ".join(f"{name} {n}" for name, n in sorted(self.restarts.items()))
        lines += ["", f"supervisor restarts: {restarts}"]
        failures = self.failures
        lines.append("all invariants hold" if not failures else "FAILED: " + "; ".join(failures))
        return "\n".join(lines)


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
                progress = Progress(redis, Keys(settings.redis_prefix), job_id)
                faults = schedule(plan.seed, plan.scenes - len(bad_names), plan.rounds)
                try:
                    await _drive(plan, progress, faults, servers, supervisor, records, groups, say)
                except CrashLoop as exc:  # reported; the checks still run
                    crash_loop = str(exc)
                    say(f"the run broke: {exc}")
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
    """Inject ``faults`` as the job reaches them, then wait for the job to end."""
    started = time.monotonic()
    deadline = started + plan.within_s
    pending = list(faults)
    current: FaultRecord | None = None
    while time.monotonic() < deadline:
        supervisor.check()
        groups |= {c.pid for c in supervisor.children.values() if c.pid is not None}
        await progress.poll()
        if current is not None and progress.done > current.done_before:
            current.done_after = progress.done
            current.resumed_s = time.monotonic() - started - current.at_s
            say(f"  work resumed {current.resumed_s:.1f} s after the {current.kind} fault")
            current = None
        if current is not None and time.monotonic() - started - current.at_s > plan.resume_within_s:
            return  # stalled: the report says so
        if progress.ended and current is None:
            return
        if current is None and pending and progress.done >= pending[0].after_done:
            fault = pending.pop(0)
            await asyncio.sleep(fault.pause_s)
            await progress.poll()
            current = FaultRecord(
                fault.kind,
                time.monotonic() - started,
                progress.done,
                await progress.in_flight(),
            )
            records.append(current)
            say(f"  {fault.kind}: SIGKILL with {progress.done} scenes done")
            await _inject(fault, servers, supervisor)
            continue
        await asyncio.sleep(0.25)


def _orphans(settings: Settings | None, groups: set[int], server_pids: set[int]) -> list[int]:
    """Processes of the run still alive after its shutdown: the children's process groups,
    anything started with the run's settings, the servers."""
    found = set(procs.in_groups(groups)) | set(procs.alive(server_pids))
    if settings is not None:
        found |= set(procs.with_env("MODOMO_REDIS_PREFIX", settings.redis_prefix))
    return sorted(found)
