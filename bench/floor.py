"""The framework's floor: bare Litestar, served exactly as ``modomo api`` serves the API.

    python bench/floor.py --port PORT --database-url URL --schema SCHEMA --job-id ID

``GET /const`` answers a constant JSON object (the framework's floor); ``GET /row`` one
asyncpg ``fetchrow`` of a job by its primary key, as JSON (the floor for a read). No auth,
no middleware, no dependencies: what every Modomo route is measured against.
"""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg
import uvicorn
from litestar import Litestar, get

from modomo.pg import keep_session


def floor_app(database_url: str, schema: str, job_id: str) -> Litestar:
    pools: list[asyncpg.Pool[Any]] = []

    async def start() -> None:
        # The same pool settings as the API's (no reset query on release).
        pools.append(
            await asyncpg.create_pool(
                database_url,
                min_size=1,
                max_size=10,
                server_settings={"search_path": schema},
                reset=keep_session,
            )
        )

    async def stop() -> None:
        await pools[0].close()

    @get("/const", sync_to_thread=False)
    def const() -> dict[str, Any]:
        return {"ok": True, "name": "floor", "items": [1, 2, 3]}

    @get("/row")
    async def row() -> dict[str, Any]:
        found = await pools[0].fetchrow(
            "SELECT job_id, dataset_id, status, total, ok, created_at FROM jobs WHERE job_id = $1",
            job_id,
        )
        return dict(found) if found is not None else {}

    return Litestar([const, row], on_startup=[start], on_shutdown=[stop], debug=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--job-id", required=True)
    args = parser.parse_args()
    uvicorn.run(
        floor_app(args.database_url, args.schema, args.job_id),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
