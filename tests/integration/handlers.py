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
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Sequence

from modomo.domain.events import EventBase, SceneCompleted
from modomo.streams.delivery import TaskContext

SLOW_S = float(os.environ.get("MODOMO_TEST_SLOW_S", "1.0"))
BLOCK_S = float(os.environ.get("MODOMO_TEST_BLOCK_S", "1.0"))


def calls_key(prefix: str, scene_id: str) -> str:
    return f"{prefix}:test:calls:{scene_id}"


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
