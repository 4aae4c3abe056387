"""A small asyncio supervisor for the child processes of ``modomo up`` and ``modomo demo``.

- Each child runs in a process group of its own (``start_new_session``), so stopping it
  also stops whatever it started.
- A child that exits while it should be running is restarted after a backoff (0.5 s,
  doubling to 10 s), and both facts are logged. One that exits more than ``max_restarts``
  times within ``window_s`` is crash-looping: :meth:`Supervisor.wait_failed` raises
  :class:`CrashLoop` naming it and its log, and the caller stops everything.
- :meth:`Supervisor.stop` sends SIGTERM to every child's group, waits up to ``grace_s``
  (10 s) in all, then SIGKILLs the groups still alive.

Why not a library: supervisord is a daemon driven by an INI file and XML-RPC (it would be
one more process to start, configure and stop, and it has no "give up and exit" on a
crash loop without an event listener); circus brings ZeroMQ and Tornado; honcho stops
everything when one process exits and never restarts. What ``up`` needs (restart with
backoff, give up on a crash loop, stop process groups within a bound, readiness checks
over HTTP) is about as much code as any of them would take to drive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger("modomo.supervisor")


class CrashLoop(RuntimeError):
    """A child kept exiting; the message names it and where its log is."""


@dataclass
class Child:
    """One supervised command: its name, argv, environment and log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    exits: deque[float] = field(default_factory=deque)
    restarts: int = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class Supervisor:
    """Starts children, restarts the ones that die, stops them all."""

    def __init__(
        self,
        *,
        max_restarts: int = 5,
        window_s: float = 60.0,
        grace_s: float = 10.0,
        backoff_s: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        self.children: dict[str, Child] = {}
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.grace_s = grace_s
        self.backoff_s = backoff_s
        self._watchers: list[asyncio.Task[None]] = []
        self._failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stopping = False

    async def start(self, child: Child) -> Child:
        """Start ``child`` and keep it running until :meth:`stop`."""
        self.children[child.name] = child
        await self._spawn(child)
        self._watchers.append(asyncio.create_task(self._watch(child)))
        return child

    async def wait_failed(self) -> None:
        """Returns never while all is well; raises :class:`CrashLoop` when a child gives up."""
        await asyncio.shield(self._failed)

    def check(self) -> None:
        """Raise the :class:`CrashLoop` now if one has happened."""
        if self._failed.done():
            self._failed.result()

    async def _spawn(self, child: Child) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        with child.log_path.open("ab") as out:
            child.proc = await asyncio.create_subprocess_exec(
                *child.argv,
                env=child.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        log.info("child_started", child=child.name, pid=child.proc.pid)

    async def _watch(self, child: Child) -> None:
        while not self._stopping:
            assert child.proc is not None
            code = await child.proc.wait()
            if self._stopping:
                return
            now = time.monotonic()
            child.exits.append(now)
            while child.exits and now - child.exits[0] > self.window_s:
                child.exits.popleft()
            log.warning("child_exited", child=child.name, code=code, log=str(child.log_path))
            _kill_group(child, signal.SIGKILL)  # anything it left behind in its group
            if len(child.exits) > self.max_restarts:
                log.error("child_crash_loop", child=child.name, exits=len(child.exits))
                if not self._failed.done():
                    self._failed.set_exception(
                        CrashLoop(
                            f"{child.name} exited {len(child.exits)} times within "
                            f"{self.window_s:.0f} s (last exit code {code}); "
                            f"see {child.log_path}"
                        )
                    )
                return
            pause = min(self.backoff_s[0] * 2 ** (len(child.exits) - 1), self.backoff_s[1])
            await asyncio.sleep(pause)
            if self._stopping:
                return
            await self._spawn(child)
            child.restarts += 1
            log.warning("child_restarted", child=child.name, pid=child.pid, after_s=pause)

    async def stop(self) -> None:
        """SIGTERM every child's process group; SIGKILL what is left after ``grace_s``."""
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        running = [c for c in self.children.values() if c.proc and c.proc.returncode is None]
        for child in running:
            _kill_group(child, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for child in running:
            assert child.proc is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.proc.wait(), max(deadline - time.monotonic(), 0.01))
        for child in running:
            # The group, not only the leader: a child's own children go too.
            _kill_group(child, signal.SIGKILL)
            if child.proc is not None and child.proc.returncode is None:
                await child.proc.wait()
        if not self._failed.done():
            self._failed.cancel()
        log.info("children_stopped", children=sorted(self.children))


def _kill_group(child: Child, sig: signal.Signals) -> None:
    if child.pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # The child leads its own session, so its process group id is its pid.
        os.killpg(child.pid, sig)
