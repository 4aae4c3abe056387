"""A worker process running :func:`tests.integration.handlers.behave`.

``python -m tests.integration.worker_proc`` with the ``MODOMO_*`` settings in the
environment; it prints ``ready`` once its group exists, stops on SIGTERM, and exits with
the worker's exit status (3 when a handler stopped it for a restart).
"""

from __future__ import annotations

import asyncio
import sys

from redis.asyncio import Redis

from modomo.logs import configure_logging
from modomo.settings import Settings
from modomo.streams.connection import connect
from modomo.streams.delivery import Handler
from modomo.streams.worker import Worker
from tests.integration.handlers import behave


async def serve(redis: Redis, settings: Settings, handler: Handler) -> int:
    """Run a worker with ``handler`` until SIGTERM, after printing ``ready``; its exit
    status."""
    worker = Worker(redis, settings, handler)
    await worker.queue.ensure_group()
    print("ready", flush=True)
    sys.stdout.close()
    await worker.run_until_signal()
    return worker.exit_status


async def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings)
    redis = connect(settings)
    try:
        return await serve(redis, settings, behave)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
