"""Where the worker reads originals and writes artifacts: a small async protocol.

Production uses the bucket client of :mod:`modomo.storage` (aiobotocore, R2 or any
S3-compatible server), which already has the two methods the protocol asks for; tests and
the CPU demo use :class:`DirStorage`, a local folder laid out like the bucket. The worker
wraps either in :class:`Retrying`: storage that is unreachable or failing (connection
refused, timeouts, 5xx) is waited for with a capped backoff, bounded by the task's
deadline, while an input error (the original is too big, gone or changed since it was
registered) fails at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeVar

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from modomo.domain.failures import InputError
from modomo.storage import http_status
from modomo.streams.outage import Reconnect

T = TypeVar("T")
log = structlog.get_logger("modomo.gpu.storage")


class ObjectStore(Protocol):
    """The two calls the worker makes: read an original, write an artifact."""

    async def get(self, key: str, *, max_bytes: int | None = None, etag: str = "") -> bytes:
        """The object's bytes; InputError when over ``max_bytes``, gone, or no longer the
        object whose ETag was ``etag``."""
        ...

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...


class DirStorage:
    """Objects as files under ``root`` (``root/depth/<scene>.png`` ...); writes are atomic.

    The ETag of a file is its MD5, as S3 gives for a single-part upload.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The file holding ``key``; keys never leave ``root``."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or key.startswith("/"):
            raise ValueError(f"object key {key!r} leaves the storage folder")
        return path

    async def get(self, key: str, *, max_bytes: int | None = None, etag: str = "") -> bytes:
        return await asyncio.to_thread(self._read, key, max_bytes, etag)

    def _read(self, key: str, max_bytes: int | None, etag: str) -> bytes:
        path = self.path(key)
        try:
            size = path.stat().st_size
            if max_bytes is not None and size > max_bytes:
                raise InputError(
                    f"the original is {size} bytes, over the {max_bytes}-byte download limit"
                )
            data = path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"no object {key!r} in {self.root}") from None
        if etag and hashlib.md5(data).hexdigest() != etag.strip('"'):
            raise InputError(f"the original {key} changed after it was registered")
        return data

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self.path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)


def transient(exc: BaseException) -> bool:
    """Whether a storage error is worth waiting out: the server unreachable, slow, or
    failing (5xx, 429). Refusals (403, 400) and input errors are not."""
    if isinstance(exc, InputError):
        return False
    if isinstance(exc, ClientError):
        status = http_status(exc)
        return status >= 500 or status in (408, 429)
    return isinstance(exc, BotoCoreError | OSError | asyncio.TimeoutError) or (
        type(exc).__module__.startswith("aiohttp")
    )


class Retrying:
    """The worker's view of an :class:`ObjectStore`: waits out storage outages (capped
    backoff), and a missing original is an input error.

    There is no limit of its own: the task's deadline ends the wait, and the attempt then
    fails as transient and is retried after its backoff.
    """

    def __init__(self, inner: ObjectStore, cap_ms: int = 5_000) -> None:
        self.inner = inner
        self.cap_ms = cap_ms
        self.outages = 0
        """How many calls met an unreachable or failing storage (at least once)."""

    async def get(self, key: str, *, max_bytes: int | None = None, etag: str = "") -> bytes:
        """The original; an InputError when it is gone (deleted since registration)."""
        try:
            return await self._retry(
                lambda: self.inner.get(key, max_bytes=max_bytes, etag=etag), key
            )
        except (ClientError, FileNotFoundError) as exc:
            if isinstance(exc, ClientError) and http_status(exc) != 404:
                raise
            raise InputError(f"the original {key} is gone from storage") from None

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._retry(lambda: self.inner.put(key, data, content_type), key)

    async def _retry(self, call: Callable[[], Awaitable[T]], key: str) -> T:
        backoff = Reconnect(self.cap_ms, base_ms=100)
        while True:
            try:
                return await call()
            except Exception as exc:
                if not transient(exc):
                    raise
                if not backoff.failures:
                    self.outages += 1
                log.warning(
                    "storage_unavailable",
                    key=key,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_ms=backoff.next_ms(),
                )
                await backoff.wait()
