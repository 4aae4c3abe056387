"""Many SSE clients in one process: the load generator of ``bench/api.py``'s SSE rows.

    echo '{"port": P, "token": T, "jobs": [...], "live": N, "pattern": "..."}' \\
        | python bench/sse_clients.py

One raw asyncio protocol per client on uvloop (no HTTP library: the client side must
disturb the measurement as little as possible). Each client sends ``GET
/jobs/<job>/events`` and keeps what arrives with its receipt time; a message holding
``pattern`` (default: the appender's ``"scene_id":"live-``) whose event was created after
the client connected is a live delivery: its delay is the receipt time minus the event's
``at`` (stamped just before the append, on this same machine's clock). Messages are parsed
after the run, so that parsing never delays a receipt. A client is done after ``live``
live deliveries, or at ``job_done``.

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
    """One SSE client. While it runs it only keeps what arrives, with the time, and counts
    live messages (a byte pattern, across chunk boundaries); messages are parsed after
    the run, so parsing never delays the next receipt."""

    def __init__(self, owner: Run, job_id: str) -> None:
        self.owner = owner
        self.job_id = job_id
        self.head = b""
        self.chunks: list[tuple[float, bytes]] = []
        self.tail = b""
        self.connected_at = 0.0
        self.live = 0
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
        if not self.connected_at:
            self.head += data
            head, sep, data = self.head.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 200"):
                self._finish(f"status {head[:40]!r}")
                return
            self.connected_at = now
            self.owner.connected()
        self.chunks.append((now, data))
        window = self.tail + data
        self.live += window.count(self.owner.pattern) - self.tail.count(self.owner.pattern)
        self.tail = window[-len(self.owner.pattern) :]
        if self.live >= self.owner.live or b"event: job_done" in window:
            self._finish(None)

    def measure(self) -> tuple[list[float], int, float | None]:
        """Delays of the live messages, how many others came, when the first live one did."""
        delays: list[float] = []
        history, first = 0, None
        buffer = b""
        for at_receipt, data in self.chunks:
            # Chunked transfer encoding puts size lines between messages, never a blank
            # line of their own: splitting on blank lines still finds each message.
            *frames, buffer = (buffer + data).split(b"\r\n\r\n")
            for frame in frames:
                if b"event: " not in frame:
                    continue  # keep-alive, or the last chunk's size line
                if self.owner.pattern in frame:
                    line = frame[frame.index(b"data: ") + 6 :].split(b"\r\n", 1)[0]
                    at = _stamp.decode(line).at.timestamp()
                    if at > self.connected_at:
                        delays.append((at_receipt - at) * 1000)
                        first = at_receipt if first is None else first
                        continue
                history += 1
        return delays, history, first

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
        self.pattern: bytes = spec.get("pattern", '"scene_id":"live-').encode()
        self.timeout_s: float = spec.get("timeout_s", 300)
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
        delays: list[float] = []
        history: list[int] = []
        history_s: list[float] = []
        for client in clients:
            mine, others, first = client.measure()
            delays += mine
            history.append(others)
            if first is not None:
                history_s.append(first - started)
        return {
            "delays": delays,
            "clients": len(clients),
            "unfinished": len(pending),
            "cut_off": self.cut_off,
            "errors": errors[:5],
            "history_messages": sorted(history),
            "history_s": sorted(history_s),
        }


def main() -> None:
    spec = msgspec.json.decode(sys.stdin.buffer.read())
    result = uvloop.run(Run(spec).main())
    # A file, not stdout: a pipe that uvloop left non-blocking would cut a long line short.
    Path(spec["out"]).write_bytes(msgspec.json.encode(result))


if __name__ == "__main__":
    main()
