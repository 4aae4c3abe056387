"""Many SSE clients in one process: the load generator of ``bench/api.py``'s SSE rows.

    echo '{"port": P, "token": T, "jobs": [...], "live": N, "marker": "scene_start"}' \\
        | python bench/sse_clients.py

One raw asyncio protocol per client on uvloop (no HTTP library: the client side must
disturb the measurement as little as possible). Each client sends ``GET
/jobs/<job>/events`` and splits what comes into SSE messages. A message of the ``marker``
type whose event was created after the client connected is a live delivery: its delay is
the receipt time minus the event's ``at`` (stamped just before the append, on this same
machine's clock). A client is done after ``live`` live deliveries, or at ``job_done``.

Prints ``ready`` once every client has its ``200`` (the appender waits for it), then
writes one JSON document to the spec's ``out`` file: delays, how many clients were cut
off (the server closed first), history messages each received and how long that took.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import uvloop


class _Stamp(msgspec.Struct):
    at: datetime


_stamp = msgspec.json.Decoder(_Stamp)


class Client(asyncio.Protocol):
    def __init__(self, owner: Run, job_id: str) -> None:
        self.owner = owner
        self.job_id = job_id
        self.buffer = b""
        self.headers_done = False
        self.connected_at = 0.0
        self.live = 0
        self.history = 0
        self.history_done_at: float | None = None
        self.finished = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport  # uvloop's, not an asyncio.Transport
        transport.write(
            f"GET /jobs/{self.job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {self.owner.token}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        if not self.headers_done:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 200"):
                self._finish(f"status {head[:40]!r}")
                return
            self.headers_done = True
            self.connected_at = now
            self.buffer = rest
            self.owner.connected()
        # Chunked transfer encoding: chunk-size lines sit between messages; they hold no
        # blank line of their own, so splitting on blank lines still finds each message.
        *frames, self.buffer = self.buffer.split(b"\r\n\r\n")
        for frame in frames:
            self._message(frame, now)

    def _message(self, frame: bytes, now: float) -> None:
        event = data = b""
        for line in frame.split(b"\r\n"):
            if line.startswith(b"event: "):
                event = line[7:]
            elif line.startswith(b"data: "):
                data = line[6:]
        if not event:
            return  # keep-alive, or a chunk-size line
        if event == self.owner.marker:
            at = _stamp.decode(data).at.timestamp()
            if at > self.connected_at:
                self.owner.delays.append((now - at) * 1000)
                self.live += 1
                if self.history_done_at is None:
                    self.history_done_at = now
                if self.live >= self.owner.live:
                    self._finish(None)
                return
        self.history += 1
        if event == b"job_done":
            self._finish(None)

    def _finish(self, error: str | None) -> None:
        if not self.finished.done():
            self.finished.set_result(error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.owner.cut_off += 1
            self.finished.set_result("closed by the server")


class Run:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.port: int = spec["port"]
        self.token: str = spec["token"]
        self.jobs: list[str] = spec["jobs"]
        self.live: int = spec["live"]
        self.marker: bytes = spec.get("marker", "scene_start").encode()
        self.timeout_s: float = spec.get("timeout_s", 300)
        self.delays: list[float] = []
        self.cut_off = 0
        self._ready = 0

    def connected(self) -> None:
        self._ready += 1
        if self._ready == len(self.jobs):
            print("ready", flush=True)

    async def main(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        started = time.time()
        clients: list[Client] = []
        for job_id in self.jobs:
            _, client = await loop.create_connection(
                lambda job_id=job_id: Client(self, job_id),  # type: ignore[misc]
                "127.0.0.1",
                self.port,
            )
            clients.append(client)
        done, pending = await asyncio.wait([c.finished for c in clients], timeout=self.timeout_s)
        errors = [f.result() for f in done if f.result()]
        history_s = sorted(
            c.history_done_at - started for c in clients if c.history_done_at is not None
        )
        return {
            "delays": self.delays,
            "clients": len(clients),
            "unfinished": len(pending),
            "cut_off": self.cut_off,
            "errors": errors[:5],
            "history_messages": sorted(c.history for c in clients),
            "history_s": history_s,
        }


def main() -> None:
    spec = msgspec.json.decode(sys.stdin.buffer.read())
    result = uvloop.run(Run(spec).main())
    # A file, not stdout: a pipe that uvloop left non-blocking would cut a long line short.
    Path(spec["out"]).write_bytes(msgspec.json.encode(result))


if __name__ == "__main__":
    main()
