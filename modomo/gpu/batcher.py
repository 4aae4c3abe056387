"""One GPU thread, and concurrent calls of a stage coalesced into one model call.

Every model call goes through :class:`Batcher`: calls made while the GPU thread is busy
wait and then run together as one batch (up to ``max_batch``), so with several scenes in
flight each model sees batches without any fixed waiting window. With ``max_batch=1`` and
one scene in flight this is exactly the sequential pipeline. Only model calls use the GPU
thread; decoding, PNG/JPEG encoding and uploads run beside it on other threads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - the conventional name for an input type
R = TypeVar("R")


class _Queue(Generic[I, R]):
    def __init__(self, fn: Callable[[Sequence[I]], Sequence[R]]) -> None:
        self.fn = fn
        self.waiting: list[tuple[I, asyncio.Future[R]]] = []
        self.draining = False


class Batcher:
    """Runs batch functions on a single GPU thread, merging calls that arrive together."""

    def __init__(self, max_batch: int = 1) -> None:
        self.max_batch = max(1, max_batch)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modomo-gpu")
        self._queues: dict[str, _Queue[Any, Any]] = {}
        self._drains: set[asyncio.Task[None]] = set()
        self.batch_sizes: dict[str, list[int]] = {}
        self._busy_since: float | None = None
        self._busy_key = ""

    def busy_for(self) -> tuple[str, float]:
        """The stage key of the model call on the GPU thread now and how long it has run
        (``("", 0.0)`` when the thread is idle). A thread cannot be stopped from outside:
        a call that runs far past its deadline means the process must be restarted."""
        since = self._busy_since
        return (self._busy_key, time.monotonic() - since) if since is not None else ("", 0.0)

    async def call(self, key: str, fn: Callable[[Sequence[I]], Sequence[R]], item: I) -> R:
        """``fn([item, ...])[k]`` for this item, batched with other calls under ``key``."""
        loop = asyncio.get_running_loop()
        queue = self._queues.setdefault(key, _Queue(fn))
        future: asyncio.Future[R] = loop.create_future()
        queue.waiting.append((item, future))
        if not queue.draining:
            queue.draining = True
            task = loop.create_task(self._drain(key, queue))
            self._drains.add(task)  # the loop keeps only a weak reference to tasks
            task.add_done_callback(self._drains.discard)
        return await future

    async def _drain(self, key: str, queue: _Queue[Any, Any]) -> None:
        try:
            # One turn of the loop lets scenes reaching this stage at the same time join.
            await asyncio.sleep(0)
            while queue.waiting:
                batch = queue.waiting[: self.max_batch]
                del queue.waiting[: self.max_batch]
                self.batch_sizes.setdefault(key, []).append(len(batch))
                await self._run(key, queue.fn, batch)
        except BaseException as exc:  # cancelled: nobody may wait forever
            for _, future in queue.waiting:
                _resolve(future, exc=exc)
            queue.waiting.clear()
            raise
        finally:
            queue.draining = False

    def _timed(
        self, key: str, fn: Callable[[Sequence[Any]], Sequence[Any]], items: list[Any]
    ) -> Sequence[Any]:
        self._busy_key, self._busy_since = key, time.monotonic()
        try:
            return fn(items)
        finally:
            self._busy_since = None

    async def _run(
        self, key: str, fn: Callable[[Sequence[Any]], Sequence[Any]], batch: list[Any]
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(
                self.executor, self._timed, key, fn, [item for item, _ in batch]
            )
        except asyncio.CancelledError as exc:
            for _, future in batch:
                _resolve(future, exc=exc)
            raise
        except Exception as exc:
            if len(batch) == 1:
                _resolve(batch[0][1], exc=exc)
                return
            # Find the scene that broke the batch: the others still get their results.
            for item, future in batch:
                await self._run(key, fn, [(item, future)])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _resolve(future, result)

    def close(self) -> None:
        """Stop the GPU thread once its current call ends."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def _resolve(
    future: asyncio.Future[Any], result: Any = None, exc: BaseException | None = None
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
