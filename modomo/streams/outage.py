"""Riding out a Redis outage: a capped, jittered backoff and the link state /health shows.

While Redis is unreachable (killed, restarting, loading its AOF, cut off) redis-py raises
``ConnectionError`` or ``TimeoutError`` on every call. A loop that meets one marks the
:class:`Link` down, sleeps :class:`Reconnect`'s next backoff and tries again; it never
exits on it. The first success marks the link up again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from modomo.streams.connection import REDIS_DOWN

T = TypeVar("T")


class Reconnect:
    """Capped exponential backoff with full jitter between tries.

    The first wait is about ``base_ms``; each further one doubles, up to ``cap_ms``.
    """

    def __init__(self, cap_ms: int, base_ms: int = 50) -> None:
        self.cap_ms = max(cap_ms, 1)
        self.base_ms = max(1, min(base_ms, self.cap_ms))
        self.failures = 0

    def next_ms(self) -> int:
        """The next wait, in milliseconds, without recording a failure."""
        step = min(self.cap_ms, self.base_ms * 2 ** min(self.failures, 30))
        return max(1, int(random.uniform(step / 2, step)))

    async def wait(self) -> None:
        """Record one failed try and sleep the next backoff."""
        delay = self.next_ms()
        self.failures += 1
        await asyncio.sleep(delay / 1000)

    def reset(self) -> None:
        self.failures = 0


class Link:
    """Whether this process reaches Redis, as its loops last saw it."""

    def __init__(self, log: structlog.typing.FilteringBoundLogger | None = None) -> None:
        self.down_since: float | None = None
        self.last_error = ""
        self.outages = 0
        """How many times the link went down since the process started."""
        self._log = log or structlog.get_logger("modomo.streams.outage")

    @property
    def reachable(self) -> bool:
        return self.down_since is None

    def down(self, exc: BaseException, what: str) -> None:
        """A call failed because Redis is unreachable."""
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.outages += 1
            self._log.warning("redis_unreachable", during=what, error=self.last_error)

    def up(self) -> None:
        """A call succeeded."""
        if self.down_since is not None:
            self._log.info("redis_reachable", outage_s=round(time.monotonic() - self.down_since, 2))
            self.down_since = None


async def through_outage(call: Callable[[], Awaitable[T]], link: Link, cap_ms: int, what: str) -> T:
    """``await call()``, trying again after each backoff while Redis is unreachable.

    ``call`` must be safe to repeat: a write whose reply was lost may have landed, so
    writers check for that first (see :mod:`modomo.streams.fence`). Any other error
    propagates; cancelling the caller ends the wait.
    """
    backoff = Reconnect(cap_ms)
    while True:
        try:
            result = await call()
        except REDIS_DOWN as exc:
            link.down(exc, what)
            await backoff.wait()
            continue
        link.up()
        return result
