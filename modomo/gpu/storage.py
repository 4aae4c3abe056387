"""Where the worker reads originals and writes artifacts: a small async protocol.

Production uses the bucket client of :mod:`modomo.storage` (aiobotocore, R2 or any
S3-compatible server), which already has the two methods the protocol asks for; tests and
the CPU demo use :class:`DirStorage`, a local folder laid out like the bucket.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Protocol


class ObjectStore(Protocol):
    """The two calls the worker makes: read an original, write an artifact."""

    async def get(self, key: str) -> bytes: ...

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...


class DirStorage:
    """Objects as files under ``root`` (``root/depth/<scene>.png`` ...); writes are atomic."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The file holding ``key``; keys never leave ``root``."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or key.startswith("/"):
            raise ValueError(f"object key {key!r} leaves the storage folder")
        return path

    async def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise FileNotFoundError(f"no object {key!r} in {self.root}") from None

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self.path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
