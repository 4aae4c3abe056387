"""A batch consumer-group loop for light work (the scene worker is in ``worker.py``).

Reads up to ``batch`` entries per XREADGROUP (BLOCK while idle), hands each decoded entry
to the handler and acks every entry whose handler returned, in one XACK per batch. An
entry whose handler raised stays pending, unacked, for its owner to inspect or claim
(this loop does not retry it itself); an entry that cannot be decoded is passed to
``on_undecodable`` and acked, so one bad entry never stops the loop.

With ``read_ahead``, while a full batch is being handled the next one is already being
read, and acks are sent without waiting for their reply: Redis works while Python does.
Entries then wait at most one batch's handling time in the pending list, which suits
handlers that take microseconds; the GPU worker reads one task at a time instead.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Literal, TypeVar

import msgspec
import structlog
from hiredis import pack_command
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from modomo.streams.entries import entries_of, field_of

T = TypeVar("T")
_Reply = Literal["read", "ack"]


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
        read_ahead: bool = False,
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
        self.read_ahead = read_ahead
        self.on_undecodable = on_undecodable
        self._decoder = msgspec.json.Decoder(type_)
        self._stopping = asyncio.Event()
        self._conn: AbstractConnection | None = None
        self._expected: deque[_Reply] = deque()
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
        """Consume until :meth:`stop`; a lost connection is re-opened after a pause."""
        await self.ensure_group()
        try:
            # A batch read ahead before stop() was called is handled before returning.
            while not self._stopping.is_set() or "read" in self._expected:
                try:
                    await self.run_once()
                except RedisConnectionError as exc:
                    self._log.warning("connection_lost", error=str(exc))
                    await self._drop_connection()
                    if not self._stopping.is_set():
                        await asyncio.sleep(1.0)
        finally:
            await self.close()

    async def close(self) -> None:
        """Wait for outstanding replies, then give the held connection back to the pool."""
        if self._conn is None:
            return
        try:
            while self._expected:
                await self._reply()
        finally:
            await self.redis.connection_pool.release(self._conn)
            self._conn = None

    async def _drop_connection(self) -> None:
        self._expected.clear()
        if self._conn is not None:
            await self._conn.disconnect()
            await self.redis.connection_pool.release(self._conn)
            self._conn = None

    async def _send(self, kind: _Reply, *args: bytes | str | int) -> None:
        # One connection held for the loop, commands packed by hiredis and replies left
        # raw: redis-py's per-entry reply parsing and Python packing of thousands of ids
        # cost more than the server's own work for a batch.
        if self._conn is None:
            self._conn = await self.redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        await self._conn.send_packed_command(pack_command(args), check_health=False)  # type: ignore[arg-type]
        self._expected.append(kind)

    async def _reply(self) -> tuple[_Reply, Any]:
        assert self._conn is not None
        kind = self._expected.popleft()
        reply = await self._conn.read_response()
        if isinstance(reply, ResponseError):
            raise reply
        return kind, reply

    async def _send_read(self, *, block: bool) -> None:
        wait = (b"BLOCK", self.block_ms) if block else ()
        await self._send(
            "read",
            b"XREADGROUP",
            b"GROUP",
            self.group,
            self.consumer,
            b"COUNT",
            self.batch,
            *wait,
            b"STREAMS",
            self.stream,
            b">",
        )

    async def _read_batch(self) -> Any:
        """The reply to the oldest XREADGROUP sent, sending one first if none is out."""
        if "read" not in self._expected:
            await self._send_read(block=True)
        while True:
            kind, reply = await self._reply()
            if kind == "read":
                return reply

    async def run_once(self) -> int:
        """Read and handle one batch; returns how many entries it acked."""
        entries = entries_of(await self._read_batch())
        if not entries:
            return 0
        if self.read_ahead and len(entries) == self.batch and not self._stopping.is_set():
            # A full batch means a backlog: fetch the next one (without BLOCK) meanwhile.
            await self._send_read(block=False)
        ok = await self._handle(entries)
        if ok:
            await self._send("ack", b"XACK", self.stream, self.group, *ok)
            if not self.read_ahead:
                await self._reply()
        self.acked += len(ok)
        return len(ok)

    async def _handle(self, entries: list[tuple[bytes, list[bytes]]]) -> list[bytes]:
        ok: list[bytes] = []
        field = self.field
        decode = self._decoder.decode
        for entry_id, flat in entries:
            payload = field_of(flat, field)
            try:
                if payload is None:
                    raise KeyError(field)
                value = decode(payload)
            except (KeyError, msgspec.DecodeError) as exc:
                reason = f"missing field {field!r}" if isinstance(exc, KeyError) else str(exc)
                self._log.error("entry_undecodable", entry_id=entry_id, error=reason)
                if self.on_undecodable is not None:
                    fields = dict(zip(flat[::2], flat[1::2], strict=True))
                    await self.on_undecodable(entry_id.decode(), fields, reason)
                ok.append(entry_id)
                continue
            try:
                await self.handler(entry_id.decode(), value)
            except Exception as exc:
                # Left pending and unacked: never lost, visible in XPENDING.
                self._log.warning("handler_failed", entry_id=entry_id, error=repr(exc))
                continue
            ok.append(entry_id)
        return ok
