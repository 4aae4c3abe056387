"""The projector process's HTTP side door: ``GET /health`` and ``GET /metrics``.

Two read-only routes need no web framework: a plain asyncio server answers them, one
request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modomo.bearer import bearer_matches

Health = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]

_REASONS = {
    200: "OK",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


def _authorized(request: bytes, token: str) -> bool:
    """Whether the request's headers carry ``Authorization: Bearer <token>``."""
    for line in request.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"authorization":
            return bearer_matches(value.decode("latin-1"), token)
    return False


async def serve(health: Health, host: str, port: int, *, metrics_token: str = "") -> asyncio.Server:
    """Start serving; the caller closes the returned server. With ``metrics_token``,
    ``/metrics`` needs it as a bearer token (``/health`` stays open for probes)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readuntil(b"\r\n\r\n")
                method, _, rest = request.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
                path = rest.split(" ", 1)[0].split("?", 1)[0]
                if method != "GET":
                    status, body, kind = 405, b"GET only\n", "text/plain"
                elif path == "/health":
                    status, payload = await health()
                    body, kind = msgspec.json.encode(payload), "application/json"
                elif (
                    path == "/metrics" and metrics_token and not _authorized(request, metrics_token)
                ):
                    status, body, kind = 401, b"send Authorization: Bearer <token>\n", "text/plain"
                elif path == "/metrics":
                    status, body, kind = 200, generate_latest(), CONTENT_TYPE_LATEST
                else:
                    status, body, kind = 404, b"/health or /metrics\n", "text/plain"
                head = (
                    f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {kind}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
                writer.write(head.encode() + body)
                await writer.drain()
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that went away or sent garbage gets nothing
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port)
