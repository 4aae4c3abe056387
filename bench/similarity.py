"""Similarity search: recall@10 of the HNSW index against exact search, and queries/s.

    python bench/similarity.py [--vectors 100000] [--dim 768] [--queries 200]

Starts a throwaway PostgreSQL with pgvector (pgserver's; Debian's has none), migrates a
schema of its own, COPYs ``--vectors`` synthetic object embeddings (clustered unit vectors,
CLIP ViT-L/14's 768 dimensions) with scenes and objects rows behind them, lets the
embeddings projector's index statement build the HNSW index, then runs the API's own query
(:func:`modomo.read.similarity.similar`) for random objects. Ground truth is numpy's exact
cosine ranking. The baseline is the same query forced to an exact scan, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from modomo.projections.db import connect, quote
from modomo.projections.migrate import migrate
from modomo.read.similarity import similar
from modomo.settings import Settings

SCHEMA, LOG = "bench_similarity", "bench_similarity_log"


def vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 1,000 centres: nearer to CLIP features than uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, dim))
    points = centres[rng.integers(0, 1000, n)] + 0.6 * rng.normal(size=(n, dim))
    unit: np.ndarray = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    return unit


def _encode(value: Any) -> bytes:
    array = np.asarray(value, dtype=">f4")
    return struct.pack(">HH", len(array), 0) + array.tobytes()


async def load(conn: asyncpg.Connection[Any], data: np.ndarray) -> float:
    """Scenes, objects and embeddings rows; the HNSW build's seconds."""
    await conn.set_type_codec(
        "vector", schema="public", encoder=_encode, decoder=bytes, format="binary"
    )
    n, dim = data.shape
    await conn.execute(
        "INSERT INTO scenes (scene_id, dataset_id, r2_key_original, registered_at, updated_at) "
        "SELECT 's' || i, 'd', 'k', now(), now() FROM generate_series(0, $1 - 1) i",
        n // 10,
    )
    await conn.execute(
        "INSERT INTO objects (object_id, scene_id, category_code, confidence, bbox, source, "
        "model) SELECT 'o' || i, 's' || (i / 10), 'sofa', 0.5, '{0,0,1,1}', 'detect', 'm' "
        "FROM generate_series(0, $1 - 1) i",
        n,
    )
    for start in range(0, n, 10_000):
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "embeddings",
            records=[
                ("object", f"o{i}", f"s{i // 10}", "bench", dim, data[i], now)
                for i in range(start, min(n, start + 10_000))
            ],
            columns=["kind", "item_id", "scene_id", "model", "dim", "vec", "updated_at"],
        )
    await conn.execute("SET maintenance_work_mem = '1GB'")
    started = time.perf_counter()
    await conn.execute(
        f"CREATE INDEX embeddings_hnsw_object_{dim} ON embeddings USING hnsw "
        f"((vec::public.vector({dim})) public.vector_cosine_ops) "
        f"WHERE kind = 'object' AND dim = {dim}"
    )
    built = time.perf_counter() - started
    await conn.execute("ANALYZE embeddings; ANALYZE objects; ANALYZE scenes")
    return built


async def run_queries(
    conn: asyncpg.Connection[Any], picks: list[int], k: int, *, exact: bool, ef: int
) -> tuple[list[list[int]], float]:
    """The neighbours of each picked object, and queries per second."""
    found = []
    started = time.perf_counter()
    for i in picks:
        page = await similar(conn, "object", f"o{i}", k, exact=exact, ef_search=ef)
        assert page.exact == exact
        found.append([int(item.object_id[1:]) for item in page.items if item.object_id])
    return found, len(picks) / (time.perf_counter() - started)


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


async def main(args: argparse.Namespace) -> None:
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="modomo-bench-pgvector-"))
    server = pgserver.get_server(folder, cleanup_mode="delete")
    settings = Settings.from_env(
        {}, database_url=str(server.get_uri()), db_schema=SCHEMA, db_log_schema=LOG
    )
    data = vectors(args.vectors, args.dim)
    rng = np.random.default_rng(1)
    picks = [int(i) for i in rng.choice(args.vectors, args.queries, replace=False)]
    truth = []
    for i in picks:
        distance = 1 - data @ data[i]
        distance[i] = np.inf
        truth.append([int(j) for j in np.argsort(distance, kind="stable")[: args.k]])
    admin = await asyncpg.connect(settings.database_url)
    await migrate(admin, SCHEMA, LOG)
    conn = await connect(settings)
    try:
        built = await load(conn, data)
        print(f"{args.vectors:,} vectors of {args.dim} dimensions; HNSW built in {built:.1f} s")
        exact_found, exact_qps = await run_queries(conn, picks, args.k, exact=True, ef=0)
        rows = [("exact scan (baseline)", "-", recall(exact_found, truth), exact_qps)]
        for ef in (40, 100, 200):
            found, qps = await run_queries(conn, picks, args.k, exact=False, ef=ef)
            rows.append((f"HNSW, ef_search {ef}", str(ef), recall(found, truth), qps))
    finally:
        await conn.close()
        await admin.execute(
            f"DROP SCHEMA {quote(SCHEMA)} CASCADE; DROP SCHEMA {quote(LOG)} CASCADE"
        )
        await admin.close()
        server.cleanup()
    print(f"\n| search | recall@{args.k} | queries/s | vs exact |\n| --- | ---: | ---: | ---: |")
    for name, _, got, qps in rows:
        rate = f"{qps:,.1f}" if qps < 10 else f"{qps:,.0f}"
        print(f"| {name} | {got:.3f} | {rate} | {qps / exact_qps:.0f}x |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
