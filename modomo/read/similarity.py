"""Similar scenes and objects by their CLIP embeddings; duplicate uploads by their ETag.

Search runs on pgvector's HNSW index (cosine distance), one partial index per kind and
dimension (see the embeddings projector). The index returns its nearest candidates first
and the filters (dataset, category, status) apply to those; when the filters leave fewer
than ``k``, the query runs again as an exact scan, so a filtered search is never silently
short. Without pgvector, :class:`SimilarityUnavailable` says what is missing.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from modomo.read.sql import ORG, Conn, Params, in_org

Kind = Literal["scene", "object"]
NEAR_DUPLICATE = 0.02
"""Cosine distance under which two images count as near-duplicates (the same photo
re-encoded, resized or lightly cropped)."""
MAX_CANDIDATES = 1000

MISSING_PGVECTOR = (
    "similarity search needs the pgvector extension, and this PostgreSQL has none (Debian's "
    "PostgreSQL 15 ships no pgvector package; Supabase and pgserver's PostgreSQL have it). "
    "Embeddings are still kept; install pgvector, then run `modomo replay embeddings`."
)


class SimilarityUnavailable(RuntimeError):
    """The database cannot search vectors; the message says what is missing."""


class NoEmbedding(LookupError):
    """The item exists but has no embedding yet."""


class Similar(msgspec.Struct, kw_only=True, gc=False):
    scene_id: str
    dataset_id: str
    status: str
    distance: float
    """Cosine distance, 0 (same direction) to 2."""
    similarity: float
    """1 - distance."""
    near_duplicate: bool
    object_id: str | None = None
    category: str | None = None
    confidence: float | None = None
    scene_type: str | None = None
    filename: str = ""


class SimilarPage(msgspec.Struct, kw_only=True, gc=False):
    model: str
    dim: int
    exact: bool
    """True when the answer came from an exact scan (filters left the index short)."""
    items: list[Similar]


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def vector_schema(conn: Conn) -> str | None:
    """The schema of pgvector's type when ``embeddings.vec`` is a vector; else None."""
    row = await conn.fetchrow(
        "SELECT t.typname, n.nspname FROM pg_attribute a "
        "JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE a.attrelid = to_regclass('embeddings') AND a.attname = 'vec'"
    )
    return str(row["nspname"]) if row is not None and row["typname"] == "vector" else None


async def similar(
    conn: Any,
    kind: Kind,
    item_id: str,
    k: int,
    *,
    dataset_id: str | None = None,
    category: str | None = None,
    status: str | None = None,
    exact: bool = False,
    ef_search: int = 40,
) -> SimilarPage:
    """The ``k`` nearest items of the same kind and model to ``item_id``, nearest first.

    ``exact`` skips the index (a full scan: slower, always the true nearest); ``ef_search``
    is the index's search breadth (pgvector's default 40; larger finds more of the true
    neighbours, slower). ``conn`` is one connection: the search sets ``hnsw.ef_search``
    for its own transaction. Raises SimilarityUnavailable without pgvector, NoEmbedding
    when the item has none.
    """
    ext = await vector_schema(conn)
    if ext is None:
        raise SimilarityUnavailable(MISSING_PGVECTOR)
    me = await conn.fetchrow(
        "SELECT model, dim, vec::text AS vec FROM embeddings e "
        f"WHERE e.kind = $1 AND e.item_id = $2 AND {in_org('e')}",
        kind,
        item_id,
    )
    if me is None:
        raise NoEmbedding(f"{kind} {item_id} has no embedding yet")
    dim = int(me["dim"])
    vector, distance = f"{_q(ext)}.vector({dim})", f"OPERATOR({_q(ext)}.<=>)"
    filtered = any(v is not None for v in (dataset_id, category, status))
    candidates = min(MAX_CANDIDATES, max(10 * k, 100)) if filtered else k
    arg = Params(me["vec"], me["model"], item_id)
    where = [in_org("s")]
    if dataset_id is not None:
        where.append(f"s.dataset_id = {arg(dataset_id)}")
    if status is not None:
        where.append(f"s.status = {arg(status)}")
    join = "JOIN scenes s ON s.scene_id = c.scene_id"
    columns = "s.scene_id, s.dataset_id, s.status, s.scene_type, s.filename"
    if kind == "object":
        join += " JOIN objects o ON o.object_id = c.item_id"
        columns += ", o.object_id, o.category_code AS category, o.confidence"
        where.append(in_org("o"))
        if category is not None:
            where.append(f"o.category_code = {arg(category)}")
    clause = f"WHERE {' AND '.join(where)}"
    top = arg(k)

    def query(exact: bool) -> str:
        # The index's expression is the cast to this dimension; ordering by the bare
        # column cannot use it, which is how the exact variant forces a full scan.
        key = (
            f"e.vec {distance} $1::text::{_q(ext)}.vector"
            if exact
            else (f"(e.vec::{vector}) {distance} $1::text::{vector}")
        )
        limit = "" if exact else f"LIMIT {candidates}"
        return (
            f"SELECT {columns}, c.distance FROM (SELECT e.item_id, e.scene_id, {key} AS distance "
            f"FROM embeddings e WHERE e.kind = '{kind}' AND e.dim = {dim} AND e.model = $2 "
            f"AND {in_org('e')} "
            f"AND e.item_id <> $3 ORDER BY {key} {limit}) c {join} {clause} "
            f"ORDER BY c.distance, c.item_id LIMIT {top}"
        )

    async with conn.transaction():
        await conn.execute(f"SET LOCAL hnsw.ef_search = {max(ef_search, candidates)}")
        if not exact:
            rows = await conn.fetch(query(exact=False), *arg.values)
            exact = filtered and len(rows) < k
        if exact:
            rows = await conn.fetch(query(exact=True), *arg.values)
    items = []
    for record in rows:
        row = dict(record)
        gap = float(row.pop("distance"))
        items.append(
            Similar(
                **row,
                distance=round(gap, 6),
                similarity=round(1.0 - gap, 6),
                near_duplicate=gap < NEAR_DUPLICATE,
            )
        )
    return SimilarPage(model=me["model"], dim=dim, exact=exact, items=items)


class Duplicate(msgspec.Struct, kw_only=True, gc=False):
    scene_id: str
    """The scene being registered."""
    duplicate_of: str
    """A scene already registered (or earlier in the same request) with the same bytes."""
    dataset_id: str
    """The dataset of ``duplicate_of``."""


async def duplicates(conn: Conn, dataset_id: str, etags: dict[str, str]) -> list[Duplicate]:
    """Scenes of ``etags`` (scene id → ETag) whose bytes are already registered, or were
    listed earlier in the same request."""
    wanted = {s: e for s, e in etags.items() if e}
    if not wanted:
        return []
    rows = await conn.fetch(
        "SELECT etag, scene_id, dataset_id FROM scenes WHERE etag = ANY($1::text[]) "
        f"AND org_id = {ORG} ORDER BY registered_at, scene_id",
        sorted(set(wanted.values())),
    )
    first: dict[str, tuple[str, str]] = {}
    for row in rows:
        first.setdefault(row["etag"], (row["scene_id"], row["dataset_id"]))
    out = []
    for scene_id, etag in wanted.items():
        known = first.get(etag)
        if known is not None and known[0] != scene_id:
            out.append(Duplicate(scene_id=scene_id, duplicate_of=known[0], dataset_id=known[1]))
        elif known is None:
            first[etag] = (scene_id, dataset_id)
    return out
