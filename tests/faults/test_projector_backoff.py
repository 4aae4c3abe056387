"""A projector backs off through a Redis outage instead of retaking its lease in a loop.

Seen in the chaos run (``bench/chaos.py``) before the fix: the pause reset as soon as the
runner took its PostgreSQL lease, before it had read the log, so through a Redis outage
every runner reconnected to PostgreSQL, retook its lease and logged twice every 0.25 s.
"""

from __future__ import annotations

import asyncio

import msgspec
from structlog.testing import capture_logs

from modomo.projections.registry import select
from modomo.projections.runner import ProjectorRunner
from modomo.settings import Settings
from modomo.streams.connection import connect
from tests.faults.servers import RedisServer
from tests.integration.support import wait_for

OUTAGE_S = 5.0
"""Long enough for the pauses to grow (0.25, 0.5, 1, 2 s ...) and short for a test."""


async def test_a_redis_outage_grows_the_pause_instead_of_retaking_the_lease(
    db_settings: Settings, redis_server: RedisServer
) -> None:
    settings = msgspec.structs.replace(db_settings, redis_url=redis_server.url)
    redis = connect(settings)
    runner = ProjectorRunner(settings, redis, select(["jobs"])[0], lease_poll_s=0.05)
    with capture_logs() as logs:
        task = asyncio.create_task(runner.run())
        try:

            async def active() -> bool:
                return runner.state == "active"

            await wait_for(active, within=30, what="the runner to take its lease")
            await asyncio.sleep(0.5)  # a few reads of the log done
            redis_server.kill()
            await asyncio.sleep(OUTAGE_S)
            during = list(logs)
            redis_server.start()

            async def back() -> bool:
                return runner.state == "active" and runner.last_error is None

            await wait_for(back, within=30, what="the runner to resume after the outage")
        finally:
            runner.stop()
            await asyncio.wait_for(task, 30)
            await redis.aclose()
    lost = [e for e in during if e["event"] == "projector_connection_lost"]
    retaken = [e for e in during if e["event"] == "projector_active"][1:]
    assert lost, "the outage was never noticed"
    # Pauses of 0.25, 0.5, 1, 2 s: at most about five tries in five seconds, each one
    # counted as a further failure; before the fix, ~20 tries, each "failures": 1.
    assert [e["failures"] for e in lost] == list(range(1, len(lost) + 1))
    assert len(lost) <= 6
    assert len(retaken) <= len(lost)
