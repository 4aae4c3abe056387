"""Commands packed by hiredis with raw replies, for the hot paths.

redis-py packs arguments in Python and runs a reply callback per command; for a call
carrying a thousand payloads that costs more than the server's own work. Here the command
is packed by hiredis (C) on a pooled connection and the reply comes back as hiredis
parsed it. Everything else uses the ordinary client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hiredis import pack_command
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError


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


async def evalsha(
    redis: Redis, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    """Run a registered script by its SHA, loading it first when the server lacks it (a
    restarted or failed-over server starts with an empty script cache)."""
    try:
        return await execute(redis, b"EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await redis.script_load(script.script)
        return await execute(redis, b"EVALSHA", script.sha, len(keys), *keys, *args)
