"""Scene handlers whose behaviour is chosen by the scene id, for worker tests.

Every call records itself in Redis (``<prefix>:test:calls:<scene_id>``, a list of
``monotonic-time attempt pid``), so a test can count deliveries across processes, even
those that were killed.

- ``ok-*``: succeeds at once.
- ``fail-*``: always raises.
- ``flaky<N>-*``: raises on the first N calls, then succeeds.
- ``slow-*``: sleeps ``SLOW_S`` seconds without blocking the loop, then succeeds.
- ``block-*``: blocks the event loop ``BLOCK_S`` seconds (a stalled worker), then succeeds.
- ``kill-*``: SIGKILLs its own process on the first call, succeeds afterwards.
- ``poison-*``: SIGKILLs its own process on every call.
- ``input-*``: raises an input error (the original is no image): never retried.
- ``hang1-*``: on the first call, waits on a thread that sleeps ``HANG_S`` seconds (a
  model call that hangs past the task deadline); when the thread wakes it tries to emit
  a late result and records in ``<prefix>:test:late:<scene_id>`` whether that was
  ``appended`` or ``refused``. Later calls succeed.
- ``wedge-*``: on the first call raises StopWorker (the GPU thread is hung: the worker
  must exit for a restart); later calls succeed.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Sequence

from modomo.domain.events import EventBase, ModelRef, SceneCaptioned, SceneCompleted
from modomo.domain.failures import InputError
from modomo.streams.delivery import StopWorker, TaskContext
from modomo.streams.fence import Fenced

SLOW_S = float(os.environ.get("MODOMO_TEST_SLOW_S", "1.0"))
BLOCK_S = float(os.environ.get("MODOMO_TEST_BLOCK_S", "1.0"))
HANG_S = float(os.environ.get("MODOMO_TEST_HANG_S", "2.0"))


def calls_key(prefix: str, scene_id: str) -> str:
    return f"{prefix}:test:calls:{scene_id}"


def late_key(prefix: str, scene_id: str) -> str:
    return f"{prefix}:test:late:{scene_id}"


async def _late_emit(ctx: TaskContext) -> None:
    task = ctx.delivery.task
    late = SceneCaptioned(
        job_id=task.job_id,
        scene_id=task.scene_id,
        attempt=ctx.delivery.attempt,
        model=ModelRef(id="hung-model", profile="test"),
        caption="a late result from a call that hung",
    )
    try:
        await ctx.emit(late)
        outcome = "appended"
    except Fenced:
        outcome = "refused"
    await ctx.writer.redis.rpush(late_key(ctx.writer.keys.prefix, task.scene_id), outcome)


def _hung_call(loop: asyncio.AbstractEventLoop, ctx: TaskContext) -> None:
    time.sleep(HANG_S)  # the model call nobody can interrupt
    asyncio.run_coroutine_threadsafe(_late_emit(ctx), loop).result(30)


async def behave(ctx: TaskContext) -> Sequence[EventBase]:
    task = ctx.delivery.task
    writer = ctx.writer
    count = await writer.redis.rpush(
        calls_key(writer.keys.prefix, task.scene_id),
        f"{time.monotonic()} {ctx.delivery.attempt} {os.getpid()}",
    )
    scene = task.scene_id
    if scene.startswith("fail-"):
        raise RuntimeError(f"stage detect exploded on call {count}")
    if scene.startswith("input-"):
        raise InputError("the original is not an image Pillow can read")
    if scene.startswith("hang1-") and count == 1:
        await asyncio.to_thread(_hung_call, asyncio.get_running_loop(), ctx)
    if scene.startswith("wedge-") and count == 1:
        raise StopWorker("a model call hung on the GPU thread (test)")
    if (match := re.match(r"flaky(\d+)-", scene)) and count <= int(match.group(1)):
        raise RuntimeError(f"transient failure {count}")
    if scene.startswith("slow-"):
        await asyncio.sleep(SLOW_S)
    if scene.startswith("block-"):
        time.sleep(BLOCK_S)  # noqa: ASYNC251 - a stalled worker is the point
    if scene.startswith("poison-") or (scene.startswith("kill-") and count == 1):
        os.kill(os.getpid(), signal.SIGKILL)
    return [
        SceneCompleted(
            job_id=task.job_id, scene_id=scene, attempt=ctx.delivery.attempt, objects=count
        )
    ]
