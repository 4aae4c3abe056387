"""Retries, backoff and dead-lettering of scene tasks, against the real Redis."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from structlog.testing import capture_logs

from modomo.domain.events import SceneCompleted, SceneDeadLettered, SceneFailed, SceneStarted
from modomo.domain.fold import fold_job
from modomo.settings import Settings
from modomo.streams import metrics
from modomo.streams.dead import DeadLetters
from modomo.streams.keys import Keys
from modomo.streams.queue import TaskQueue
from tests.integration.handlers import behave
from tests.integration.support import calls, enqueue, job_events, running, wait_for

pytestmark = pytest.mark.integration


async def test_task_failing_twice_is_delivered_three_times_with_growing_backoff(
    redis: Redis, settings: Settings
) -> None:
    job_id, _ = await enqueue(redis, settings, ["flaky2-a"])
    async with running(redis, settings, behave):

        async def finished() -> bool:
            return any(
                isinstance(e, SceneCompleted) for e in await job_events(redis, settings, job_id)
            )

        await wait_for(finished, what="the flaky task to succeed")

    seen = await calls(redis, settings, "flaky2-a")
    assert [attempt for _, attempt, _ in seen] == [1, 2, 3]
    first_gap = seen[1][0] - seen[0][0]
    second_gap = seen[2][0] - seen[1][0]
    backoff_1, backoff_2 = (ms / 1000 for ms in settings.retry_backoff_ms)
    assert first_gap >= backoff_1
    assert second_gap >= backoff_2
    assert second_gap > first_gap

    events = await job_events(redis, settings, job_id)
    failed = [e for e in events if isinstance(e, SceneFailed)]
    assert [(e.attempt, e.will_retry) for e in failed] == [(1, True), (2, True)]
    state = fold_job(events)
    assert state is not None
    assert state.summary().status == "succeeded"
    assert [a for a, _ in state.scenes["flaky2-a"].errors] == [1, 2]
    queue = TaskQueue(redis, Keys(settings.redis_prefix))
    assert (await queue.stats()).pending == 0


async def test_task_always_failing_is_dead_after_exactly_three_attempts(
    redis: Redis, settings: Settings
) -> None:
    job_id, appended = await enqueue(redis, settings, ["fail-x", "ok-after"])
    keys = Keys(settings.redis_prefix)
    dead = DeadLetters(redis, keys)
    async with running(redis, settings, behave):

        async def is_dead() -> bool:
            return bool(await dead.oldest())

        await wait_for(is_dead, what="the failing task to be dead-lettered")

    assert len(await calls(redis, settings, "fail-x")) == 3
    [item] = await dead.oldest()
    assert item.source_id == appended.task_ids[0]
    assert item.reason == "attempts_exhausted"
    assert item.attempts == 3
    assert [e.attempt for e in item.errors] == [1, 2, 3]
    assert all("stage detect exploded" in e.error for e in item.errors)
    assert item.job_id == job_id
    assert item.scene_id == "fail-x"

    queue = TaskQueue(redis, keys)
    stats = await queue.stats()
    assert stats.pending == 0
    assert stats.dead == 1
    assert stats.dead_by_reason == {"attempts_exhausted": 1}
    assert await redis.exists(keys.attempts(item.source_id)) == 0

    events = await job_events(redis, settings, job_id)
    [dead_event] = [e for e in events if isinstance(e, SceneDeadLettered)]
    assert len(dead_event.errors) == 3
    final = [e for e in events if isinstance(e, SceneFailed) and not e.will_retry]
    assert [e.attempt for e in final] == [3]
    state = fold_job(events)
    assert state is not None
    summary = state.summary()
    assert (summary.status, summary.ok, summary.failed) == ("partial", 1, 1)


async def test_dead_task_retried_by_operator_continues_attempt_numbers(
    redis: Redis, settings: Settings
) -> None:
    job_id, _ = await enqueue(redis, settings, ["flaky3-r"])
    dead = DeadLetters(redis, Keys(settings.redis_prefix))
    async with running(redis, settings, behave):

        async def is_dead() -> bool:
            return bool(await dead.oldest())

        await wait_for(is_dead, what="dead-lettering")
        [item] = await dead.oldest()
        await dead.retry(item.id)

        async def completed() -> bool:
            events = await job_events(redis, settings, job_id)
            return any(isinstance(e, SceneCompleted) for e in events)

        await wait_for(completed, what="the retried task to complete")

    assert await dead.oldest() == []
    assert [a for _, a, _ in await calls(redis, settings, "flaky3-r")] == [1, 2, 3, 4]
    state = fold_job(await job_events(redis, settings, job_id))
    assert state is not None
    assert state.summary().status == "succeeded"
    assert state.scenes["flaky3-r"].attempt == 4


async def test_garbage_entries_are_dead_lettered_and_good_ones_still_processed(
    redis: Redis, settings: Settings
) -> None:
    keys = Keys(settings.redis_prefix)
    queue = TaskQueue(redis, keys)
    await queue.ensure_group()
    await redis.xadd(keys.queue, {b"foo": b"bar"})
    await redis.xadd(keys.queue, {b"task": b"{not json"})
    await redis.xadd(keys.queue, {b"task": b'{"job_id": 5}'})
    job_id, _ = await enqueue(redis, settings, ["ok-good"])
    async with running(redis, settings, behave):

        async def done() -> bool:
            events = await job_events(redis, settings, job_id)
            return any(isinstance(e, SceneCompleted) for e in events)

        await wait_for(done, what="the good task")

    dead = await DeadLetters(redis, keys).oldest()
    assert [d.reason for d in dead] == ["undecodable"] * 3
    assert "no 'task' field" in dead[0].error
    assert "not a scene task" in dead[1].error
    assert "not a scene task" in dead[2].error
    assert dead[1].task == b"{not json"
    assert (await queue.stats()).pending == 0


async def test_scene_started_then_completed_once_per_successful_task(
    redis: Redis, settings: Settings
) -> None:
    scenes = [f"ok-{i}" for i in range(20)]
    job_id, _ = await enqueue(redis, settings, scenes)
    async with running(redis, settings, behave, concurrency=2):

        async def all_done() -> bool:
            state = fold_job(await job_events(redis, settings, job_id))
            return state is not None and state.summary().done == len(scenes)

        await wait_for(all_done, what="all scenes")
    events = await job_events(redis, settings, job_id)
    assert sorted(e.scene_id for e in events if isinstance(e, SceneStarted)) == sorted(scenes)
    assert sorted(e.scene_id for e in events if isinstance(e, SceneCompleted)) == sorted(scenes)


async def test_worker_logs_carry_context_and_metrics_count_outcomes(
    redis: Redis, settings: Settings
) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    succeeded = sample("modomo_tasks_succeeded_total")
    dead = sample("modomo_tasks_dead_lettered_total", reason="attempts_exhausted")
    job_id, _ = await enqueue(redis, settings, ["ok-logged", "fail-logged"])
    with capture_logs() as logs:
        async with running(redis, settings, behave):

            async def both_ended() -> bool:
                state = fold_job(await job_events(redis, settings, job_id))
                return state is not None and state.summary().done == 2

            await wait_for(both_ended, what="both scenes to end")

    [done] = [e for e in logs if e["event"] == "task_done"]
    assert done["job_id"] == job_id
    assert done["scene_id"] == "ok-logged"
    assert done["duration_ms"] >= 0
    assert "ok-logged" not in done["event"]
    failures = [e for e in logs if e["event"] == "task_failed"]
    assert [e["attempt"] for e in failures] == [1, 2, 3]
    assert [e["will_retry"] for e in failures] == [True, True, False]
    assert sample("modomo_tasks_succeeded_total") == succeeded + 1
    assert sample("modomo_tasks_dead_lettered_total", reason="attempts_exhausted") == dead + 1

    metrics.observe_queue(await TaskQueue(redis, Keys(settings.redis_prefix)).stats())
    assert sample("modomo_dead_tasks") == 1
    assert sample("modomo_dead_reason", reason="attempts_exhausted") == 1
    assert 0 <= sample("modomo_dead_oldest_age_seconds") < 60


async def test_the_last_scene_to_end_appends_job_done_once(
    redis: Redis, settings: Settings
) -> None:
    from modomo.domain.events import JobCompleted

    job_id, _ = await enqueue(redis, settings, ["ok-1", "ok-2", "fail-3"], count_scenes=True)
    dead = DeadLetters(redis, Keys(settings.redis_prefix))

    async def completions() -> list[JobCompleted]:
        events = await job_events(redis, settings, job_id)
        return [e for e in events if isinstance(e, JobCompleted)]

    async with running(redis, settings, behave, concurrency=2):

        async def ended() -> bool:
            return len(await completions()) == 1

        await wait_for(ended, what="job_done")
        [first] = await completions()
        assert (first.status, first.ok, first.partial, first.failed) == ("partial", 2, 0, 1)
        events = await job_events(redis, settings, job_id)
        assert isinstance(events[-1], JobCompleted)  # nothing of this job after its end

        # An operator retries the dead scene: the job reopens and ends again.
        [item] = await dead.oldest()
        await dead.retry(item.id)

        async def ended_again() -> bool:
            return len(await completions()) == 2

        await wait_for(ended_again, what="the second job_done")
    second = (await completions())[1]
    assert (second.status, second.ok, second.failed) == ("partial", 2, 1)
    state = fold_job(await job_events(redis, settings, job_id))
    assert state is not None
    assert state.summary().status == "partial"
