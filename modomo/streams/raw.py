"""Commands packed by hiredis with raw replies, for the hot paths.

redis-py packs arguments in Python and runs a reply callback per command; for a call
carrying a thousand payloads that costs more than the server's own work. Here the command
is packed by hiredis (C) on a pooled connection and the reply comes back as hiredis
parsed it. Everything else uses the ordinary client.
"""

from __future__ import annotations

from typing import Any

from hiredis import pack_command
from redis.asyncio import Redis
from redis.exceptions import ResponseError


async def execute(redis: Redis, *args: bytes | str | int) -> Any:
    """Run one command on a connection from ``redis``'s pool; raises ResponseError."""
    pool = redis.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await conn.send_packed_command(pack_command(args), check_health=False)  # type: ignore[arg-type]
        reply = await conn.read_response()
    except BaseException:
        # A half-read reply would poison the connection for its next user.
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)
    if isinstance(reply, ResponseError):
        raise reply
    return reply
