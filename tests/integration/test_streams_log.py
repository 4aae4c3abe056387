"""Appending to the log and job streams, locks and trimming."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from redis.asyncio import Redis

from modomo.domain.codec import CODEC
from modomo.domain.events import (
    DatasetCreated,
    EventBase,
    SceneCompleted,
    SceneQueued,
    SceneStarted,
    job_of,
)
from modomo.domain.stages import SceneTask
from modomo.settings import Settings
from modomo.streams.keys import EVENT_FIELD, TASK_FIELD, Keys
from modomo.streams.locks import Locks
from modomo.streams.log import EventLog
from modomo.streams.queue import TaskQueue
from tests.integration.support import enqueue

pytestmark = pytest.mark.integration

JOBS = ["job-a", "job-b", "job-c"]


def _event(kind: int, job: str, n: int) -> EventBase:
    if kind == 0:
        return SceneStarted(job_id=job, scene_id=f"s{n}", attempt=1)
    if kind == 1:
        return SceneCompleted(job_id=job, scene_id=f"s{n}", objects=n)
    if kind == 2:
        return SceneQueued(job_id=job, scene_id=f"s{n}")
    return DatasetCreated(dataset_id=f"d{n}", name="no job")


batches = st.lists(
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from(JOBS)), min_size=1, max_size=8),
    min_size=1,
    max_size=6,
)


async def _ids_and_events(redis: Redis, key: str) -> list[tuple[str, str]]:
    rows: Any = await redis.xrange(key)
    return [(i.decode(), CODEC.decode(f[EVENT_FIELD]).event_id) for i, f in rows]


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=batches)
async def test_log_and_job_streams_hold_the_same_job_events_in_the_same_order(
    redis: Redis, batches: list[list[tuple[int, str]]]
) -> None:
    keys = Keys(f"h{uuid.uuid4().hex[:10]}")
    log = EventLog(redis, keys)
    sent: list[list[EventBase]] = [
        [_event(kind, job, n) for n, (kind, job) in enumerate(batch)] for batch in batches
    ]
    # Concurrent appenders: the transactions interleave, events within one never do.
    results = await asyncio.gather(*(log.append(events) for events in sent))
    try:
        log_rows = await _ids_and_events(redis, keys.events)
        assert sorted(e for _, e in log_rows) == sorted(e.event_id for b in sent for e in b)
        for job in JOBS:
            in_log = [
                event_id
                for _, event_id in log_rows
                if job_of(CODEC.decode(_find(sent, event_id))) == job
            ]
            in_job = [
                event_id for _, event_id in await _ids_and_events(redis, keys.job_events(job))
            ]
            assert in_log == in_job
        for events, appended in zip(sent, results, strict=True):
            assert len(appended.log_ids) == len(events)
            assert [j is None for j in appended.job_ids] == [job_of(e) is None for e in events]
            # One transaction's entries are adjacent in the log: nothing slipped between.
            positions = [i for i, (entry, _) in enumerate(log_rows) if entry in appended.log_ids]
            assert positions == list(range(positions[0], positions[0] + len(events)))
    finally:
        await redis.delete(keys.events, *(keys.job_events(j) for j in JOBS))


def _find(sent: list[list[EventBase]], event_id: str) -> bytes:
    for batch in sent:
        for event in batch:
            if event.event_id == event_id:
                return CODEC.encode(event)
    raise KeyError(event_id)


async def test_job_created_and_its_tasks_are_one_transaction(
    redis: Redis, settings: Settings
) -> None:
    keys = Keys(settings.redis_prefix)
    job_id, appended = await enqueue(redis, settings, ["a", "b", "c"])
    assert len(appended.task_ids) == 3
    rows: Any = await redis.xrange(keys.queue)
    tasks = [msgspec.json.decode(f[TASK_FIELD], type=SceneTask) for _, f in rows]
    assert [t.scene_id for t in tasks] == ["a", "b", "c"]
    assert {t.job_id for t in tasks} == {job_id}
    assert await redis.xlen(keys.job_events(job_id)) == 1


async def test_lock_is_released_only_by_its_owner(redis: Redis, settings: Settings) -> None:
    locks = Locks(redis)
    key = Keys(settings.redis_prefix).lock("scene-1")
    assert await locks.acquire(key, "w1", 5000)
    assert not await locks.acquire(key, "w2", 5000)
    assert not await locks.release(key, "w2")
    assert await locks.owner(key) == "w1"
    assert await locks.acquire(key, "w1", 5000)  # already its own (handed over with a claim)
    assert await locks.release(key, "w1")
    assert await locks.owner(key) is None


async def test_expired_lock_cannot_be_freed_by_its_former_owner(
    redis: Redis, settings: Settings
) -> None:
    locks = Locks(redis)
    key = Keys(settings.redis_prefix).lock("scene-2")
    assert await locks.acquire(key, "w1", 50)
    await asyncio.sleep(0.1)
    assert await locks.acquire(key, "w2", 5000)
    assert not await locks.release(key, "w1")
    assert await locks.owner(key) == "w2"


async def test_trim_keeps_pending_and_unread_entries(redis: Redis, settings: Settings) -> None:
    keys = Keys(settings.redis_prefix)
    queue = TaskQueue(redis, keys)
    assert await queue.trim() == 0  # no stream, no group: nothing is trimmed
    _, appended = await enqueue(redis, settings, [f"s{i}" for i in range(6)])
    ids = appended.task_ids
    assert await queue.trim() == 0  # the group exists but has read nothing yet
    await queue.ensure_group()
    assert await queue.trim() == 0
    read = await queue.read_new("c1", 4, 100)
    assert [e.id for e in read] == ids[:4]
    await redis.xack(keys.queue, queue.group, ids[0], ids[2])
    # ids[1] is pending: it and everything after it must stay.
    assert await queue.trim() == 1
    remaining: Any = await redis.xrange(keys.queue)
    assert [r[0].decode() for r in remaining] == ids[1:]
    await redis.xack(keys.queue, queue.group, ids[1], ids[3])
    assert await queue.trim() == 3
    remaining = await redis.xrange(keys.queue)
    assert [r[0].decode() for r in remaining] == ids[4:]  # never read by the group


async def test_a_second_group_that_lags_holds_the_trim_back(
    redis: Redis, settings: Settings
) -> None:
    keys = Keys(settings.redis_prefix)
    queue = TaskQueue(redis, keys)
    _, appended = await enqueue(redis, settings, ["a", "b", "c"])
    await queue.ensure_group()
    await redis.xgroup_create(keys.queue, "auditors", id="0")
    read = await queue.read_new("c1", 3, 100)
    await redis.xack(keys.queue, queue.group, *(e.id for e in read))
    assert await queue.trim() == 0
    await redis.xreadgroup("auditors", "x", {keys.queue: ">"}, count=1)
    await redis.xack(keys.queue, "auditors", appended.task_ids[0])
    assert await queue.trim() == 1
