"""A batch consumer-group loop for light work (the scene worker is in ``worker.py``).

Reads up to ``batch`` entries per XREADGROUP (BLOCK while idle), hands each decoded entry
to the handler and acks every entry whose handler returned, in one XACK per batch. An
entry whose handler raised stays pending, to be claimed again; an entry that cannot be
decoded is passed to ``on_undecodable`` and acked, so one bad entry never stops the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

T = TypeVar("T")


class BatchConsumer(Generic[T]):
    """Consumes ``stream`` as ``consumer`` of ``group``, decoding ``field`` as ``type_``."""

    def __init__(
        self,
        redis: Redis,
        stream: str,
        group: str,
        consumer: str,
        type_: type[T],
        handler: Callable[[str, T], Awaitable[None]],
        *,
        field: bytes,
        batch: int = 100,
        block_ms: int = 1000,
        on_undecodable: Callable[[str, dict[bytes, bytes], str], Awaitable[None]] | None = None,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.field = field
        self.batch = batch
        self.block_ms = block_ms
        self.on_undecodable = on_undecodable
        self._decoder = msgspec.json.Decoder(type_)
        self._stopping = asyncio.Event()
        self.acked = 0
        self._log = structlog.get_logger("modomo.consumer").bind(stream=stream, group=group)

    def stop(self) -> None:
        """Finish the batch in hand, then return from :meth:`run`."""
        self._stopping.set()

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Consume until :meth:`stop`."""
        await self.ensure_group()
        while not self._stopping.is_set():
            await self.run_once()

    async def run_once(self) -> int:
        """Read and handle one batch; returns how many entries were acked."""
        reply: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.batch, block=self.block_ms
        )
        if not reply:
            return 0
        ok: list[bytes] = []
        for entry_id, fields in reply[0][1]:
            try:
                value = self._decoder.decode(fields[self.field])
            except (KeyError, msgspec.DecodeError) as exc:
                reason = f"missing field {self.field!r}" if isinstance(exc, KeyError) else str(exc)
                self._log.error("entry_undecodable", entry_id=entry_id, error=reason)
                if self.on_undecodable is not None:
                    await self.on_undecodable(entry_id.decode(), dict(fields), reason)
                ok.append(entry_id)
                continue
            try:
                await self.handler(entry_id.decode(), value)
            except Exception as exc:
                # Left pending: a reclaimer hands it out again after its backoff.
                self._log.warning("handler_failed", entry_id=entry_id, error=repr(exc))
                continue
            ok.append(entry_id)
        if ok:
            await self.redis.xack(self.stream, self.group, *ok)
        self.acked += len(ok)
        return len(ok)
