"""The invariants a chaos run (:mod:`modomo.demo.chaos`) checks once its job has ended.

- every good scene has exactly one ``scene_done`` in the archive, and the only dead scenes
  are the planted bad inputs (dead at once, reason ``input``);
- no event is lost: each event of the job's Redis stream and of the Redis log is in the
  PostgreSQL archive (``event_log``), and the job's read model counts every scene;
- the read models equal a fresh replay of the archive into a schema of its own
  (:func:`~modomo.projections.replay.replay` with ``dry_run``: rows only on one side);
- nothing waits for an operator: no parked event, no other dead task, the job ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from modomo.domain.codec import CODEC
from modomo.domain.events import SceneCompleted, SceneDeadLettered
from modomo.projections import db
from modomo.projections.registry import READ_MODEL_PROJECTORS, select
from modomo.projections.replay import replay
from modomo.projections.status import statuses
from modomo.settings import Settings
from modomo.streams.dead import DeadLetters
from modomo.streams.keys import EVENT_FIELD, Keys


@dataclass(slots=True)
class Verdict:
    """The invariants as measured; ``failures`` names each one that does not hold."""

    good: int
    planted: set[str]
    done_once: int = 0
    dead: set[str] = field(default_factory=set)
    events_lost: int = 0
    replay_equal: bool = False
    operator_actions: int = 0
    failures: list[str] = field(default_factory=list)


async def wait_projected(settings: Settings, redis: Redis, within_s: float) -> bool:
    """Wait until every projector has folded the whole Redis log; False on timeout."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncpg.PostgresError, RedisError):
            conn = await db.connect(settings, pooled=True)
            try:
                rows = await statuses(conn, redis, Keys(settings.redis_prefix).events)
            finally:
                await conn.close()
            if all(row.lag == 0 for row in rows):
                return True
        await asyncio.sleep(0.5)
    return False


async def _stream_ids(redis: Redis, key: str) -> set[str]:
    """Event ids of every entry of a stream."""
    out: set[str] = set()
    start = "-"
    while True:
        rows: Any = await redis.xrange(key, start, "+", count=2000)
        for _, fields in rows:
            out.add(CODEC.decode(fields[EVENT_FIELD]).event_id)
        if len(rows) < 2000:
            return out
        last = rows[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else last)


async def check(
    settings: Settings,
    redis: Redis,
    job_id: str,
    planted: set[str],
    scenes: set[str],
    ended: bool,
) -> Verdict:
    """Measure the invariants of job ``job_id`` over ``scenes`` (``planted`` the bad ones)."""
    good = scenes - planted
    verdict = Verdict(good=len(good), planted=planted)
    failures = verdict.failures
    keys = Keys(settings.redis_prefix)
    conn = await db.connect(settings, pooled=True)
    try:
        async with db.transaction(conn):
            rows = await conn.fetch(
                "SELECT event_id, payload FROM event_log WHERE job_id = $1", job_id
            )
            archived = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM event_log")}
            job = await conn.fetchrow(
                "SELECT status, total, ok, partial, failed FROM jobs WHERE job_id = $1", job_id
            )
            parked = int(
                await conn.fetchval("SELECT count(*) FROM parked_events WHERE resolved_at IS NULL")
            )
    finally:
        await conn.close()
    events = [CODEC.decode(bytes(r["payload"])) for r in rows]
    done = Counter(e.scene_id for e in events if isinstance(e, SceneCompleted))
    verdict.done_once = sum(1 for s in good if done[s] == 1)
    verdict.dead = {e.scene_id for e in events if isinstance(e, SceneDeadLettered)}
    if twice := sorted(s for s, n in done.items() if n > 1):
        failures.append(f"scenes done more than once: {twice[:5]}")
    if verdict.done_once != len(good):
        failures.append(f"{len(good) - verdict.done_once} good scenes not done exactly once")
    if verdict.dead != planted:
        failures.append(f"dead scenes {sorted(verdict.dead)} are not the planted {sorted(planted)}")

    stream = await _stream_ids(redis, keys.job_events(job_id))
    log = await _stream_ids(redis, keys.events)
    verdict.events_lost = len((stream | log) - archived)
    if job is None or job["total"] != len(scenes):
        verdict.events_lost += 1
        failures.append("the job's read model does not count every scene")
    elif (job["ok"] + job["partial"], job["failed"]) != (len(good), len(planted)):
        failures.append(
            f"the job's read model shows ok+partial {job['ok'] + job['partial']}, failed "
            f"{job['failed']}; expected {len(good)} and {len(planted)}"
        )
    if verdict.events_lost:
        failures.append(f"{verdict.events_lost} events appended but not archived")

    dead_tasks = await DeadLetters(redis, keys).oldest(10_000)
    unexpected = [d for d in dead_tasks if d.scene_id not in planted or d.reason != "input"]
    verdict.operator_actions = len(unexpected) + parked + (0 if ended else 1)
    if unexpected:
        failures.append(f"{len(unexpected)} dead tasks other than the planted inputs")
    if parked:
        failures.append(f"{parked} parked events wait for an operator")
    if not ended:
        failures.append("the job did not end by itself")

    preview = await replay(settings, select(list(READ_MODEL_PROJECTORS)), dry_run=True)
    differ = {t: c for t, c in preview.changes.items() if c != (0, 0)}
    verdict.replay_equal = not differ
    if differ:
        failures.append(
            f"read models differ from a fresh replay (live-only, replay-only): {differ}"
        )
    return verdict
