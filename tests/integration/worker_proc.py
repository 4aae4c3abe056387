"""A worker process running :func:`tests.integration.handlers.behave`.

``python -m tests.integration.worker_proc`` with the ``MODOMO_*`` settings in the
environment; it prints ``ready`` once its group exists, stops on SIGTERM, and exits with
the worker's exit status (3 when a handler stopped it for a restart).
"""

from __future__ import annotations

import asyncio
import sys

from modomo.logs import configure_logging
from modomo.settings import Settings
from modomo.streams.connection import connect
from modomo.streams.worker import Worker
from tests.integration.handlers import behave


async def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings)
    redis = connect(settings)
    worker = Worker(redis, settings, behave)
    await worker.queue.ensure_group()
    print("ready", flush=True)
    sys.stdout.close()
    try:
        await worker.run_until_signal()
    finally:
        await redis.aclose()
    return worker.exit_status


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
