"""Datasets: create, list, presign uploads, register uploaded scenes, list scenes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import ValidationException
from litestar.params import Parameter

from modomo.api.auth import caller_of
from modomo.api.schemas import (
    CATEGORY_PATTERN,
    MATERIAL_PATTERN,
    SCENE_TYPE_PATTERN,
    STYLE_PATTERN,
    Accepted,
    DatasetIn,
    DuplicateWarning,
    PresignIn,
    PresignOut,
    RegisterIn,
    RegisterOut,
    SceneRef,
    Upload,
)
from modomo.api.services import (
    Conflict,
    CursorAfterId,
    CursorAfterTimeId,
    Services,
    not_found,
    origin,
    parse_time_id_cursor,
    time_id_cursor,
)
from modomo.domain.events import DatasetCreated, RegisteredScene, ScenesRegistered, new_id
from modomo.domain.taxonomies import FURNITURE, MATERIALS, SCENE_TYPES, STYLES
from modomo.read import datasets, scenes
from modomo.read.datasets import DatasetOut, DatasetPage
from modomo.read.scenes import SceneFilter, ScenePage
from modomo.read.similarity import duplicates
from modomo.storage import scene_key

Limit = Annotated[int, Parameter(ge=1, le=500, description="page size")]
UPLOAD_CLAIM_S = 7 * 24 * 3600
"""How long a presigned upload stays claimed by its organisation: registration after that
is not refused on this ground (as for uploads from before organisations)."""


async def dataset_row(svc: Services, dataset_id: str) -> DatasetOut:
    found = await datasets.dataset(svc.db, dataset_id)
    if found is None:
        raise not_found("dataset", dataset_id)
    return found


async def known_dataset(svc: Services, dataset_id: str) -> None:
    if not await datasets.dataset_exists(svc.db, dataset_id):
        raise not_found("dataset", dataset_id)


async def duplicate_warnings(
    svc: Services, dataset_id: str, fresh: list[RegisteredScene]
) -> list[DuplicateWarning]:
    """A warning for each new scene whose bytes (ETag) are already registered; checked
    before the new ones are, so a scene never duplicates itself."""
    found = await duplicates(svc.db, dataset_id, {s.scene_id: s.etag for s in fresh})
    return [
        DuplicateWarning(
            scene_id=d.scene_id,
            duplicate_of=d.duplicate_of,
            dataset_id=d.dataset_id,
            message=f"scene {d.scene_id} has the same bytes as scene {d.duplicate_of} "
            f"(dataset {d.dataset_id}): the same photo uploaded twice",
        )
        for d in found
    ]


class DatasetController(Controller):
    path = "/datasets"
    tags = ["datasets"]

    @post(
        "/", opt={"role": "reviewer"}, status_code=201, summary="Create a dataset", responses=None
    )
    async def create(
        self, request: Request[Any, Any, Any], data: DatasetIn, svc: Services
    ) -> Response[DatasetOut | Accepted]:
        event = DatasetCreated(
            dataset_id=new_id(),
            name=data.name,
            description=data.description,
            created_by=caller_of(request).subject,
            org=caller_of(request).org,
        )
        appended = await svc.append([event])
        late = await svc.unapplied("datasets", event.event_id, appended.log_ids[0])
        if late is not None:
            return late
        return Response(await dataset_row(svc, event.dataset_id), status_code=201)

    @get("/", opt={"role": "viewer"}, summary="List datasets, newest first")
    async def list_datasets(
        self, svc: Services, cursor: CursorAfterTimeId = None, limit: Limit = 50
    ) -> DatasetPage:
        before = None
        if cursor:
            at, last = parse_time_id_cursor(cursor)
            before = (at, last)
        rows = await datasets.datasets(svc.db, before=before, limit=limit + 1)
        items = rows[:limit]
        more = len(rows) > limit
        return DatasetPage(
            items=items,
            next_cursor=time_id_cursor(items[-1].created_at, items[-1].dataset_id)
            if more
            else None,
        )

    @get("/{dataset_id:str}", opt={"role": "viewer"}, summary="One dataset")
    async def get_dataset(self, dataset_id: str, svc: Services) -> DatasetOut:
        return await dataset_row(svc, dataset_id)

    @post(
        "/{dataset_id:str}/presign",
        opt={"role": "reviewer"},
        status_code=200,
        summary="Presigned upload forms (POST policy) for scene images",
        description="Each upload is a form to POST as multipart/form-data (its `fields`, "
        "then the image as `file`), valid for `MODOMO_PRESIGN_TTL_S`; the storage refuses "
        "an image over its declared `size_bytes` or of another content type.",
    )
    async def presign(
        self, dataset_id: str, data: PresignIn, request: Request[Any, Any, Any], svc: Services
    ) -> PresignOut:
        await known_dataset(svc, dataset_id)
        limit = svc.settings.max_upload_bytes
        too_big = [f.filename for f in data.files if f.size_bytes > limit]
        if too_big:
            raise ValidationException(f"files larger than {limit} bytes: {', '.join(too_big[:20])}")
        expires = datetime.now(UTC) + timedelta(seconds=svc.settings.presign_ttl_s)
        uploads = []
        for file in data.files:
            scene_id = new_id()
            key = scene_key(scene_id)
            # The policy binds the upload to its declared size: the storage refuses more.
            form = await svc.storage.presign_post(key, file.content_type, file.size_bytes)
            uploads.append(
                Upload(
                    scene_id=scene_id,
                    filename=file.filename,
                    key=key,
                    url=form.url,
                    method="POST",
                    fields=form.fields,
                    max_bytes=file.size_bytes,
                    expires_at=expires,
                )
            )
        # Whose upload each scene is: registration refuses another organisation's.
        org = caller_of(request).org
        async with svc.redis.pipeline(transaction=False) as pipe:
            for upload in uploads:
                pipe.set(svc.keys.upload_org(upload.scene_id), org, ex=UPLOAD_CLAIM_S)
            await pipe.execute()
        return PresignOut(uploads=uploads)

    @post(
        "/{dataset_id:str}/register-scenes",
        opt={"role": "reviewer"},
        status_code=200,
        raises=[Conflict],
        summary="Register uploaded scene images (checked in storage)",
        description="Each scene's object must be in storage (uploaded through its presigned "
        "URL) with an image type and a size within the limit; otherwise nothing is registered "
        "and the 409 names every problem. Registering a scene again is a no-op.",
    )
    async def register(
        self, dataset_id: str, data: RegisterIn, request: Request[Any, Any, Any], svc: Services
    ) -> RegisterOut:
        await known_dataset(svc, dataset_id)
        # A scene listed twice is registered once, under its first filename.
        first: dict[str, SceneRef] = {}
        for ref in data.scenes:
            first.setdefault(ref.scene_id, ref)
        refs = list(first.values())
        ids = list(first)
        # Across organisations (the owner's pool): a scene of another organisation is
        # refused like one of another dataset, never registered again as new.
        known = await scenes.registered(svc.pool, ids)
        elsewhere = [i for i, d in known.items() if d != dataset_id]
        if elsewhere:
            raise Conflict(f"scenes registered in another dataset: {', '.join(elsewhere[:20])}")
        fresh: list[RegisteredScene] = []
        problems: list[str] = []
        new = [r.scene_id for r in refs if r.scene_id not in known]
        claimed = await svc.redis.mget([svc.keys.upload_org(s) for s in new]) if new else []
        owners = dict(zip(new, claimed, strict=True))
        org = caller_of(request).org.encode()
        for ref in refs:
            if ref.scene_id in known:
                continue
            owner = owners.get(ref.scene_id)
            if owner is not None and owner != org:
                # Presigned for another organisation: as absent as an upload never made.
                problems.append(f"{ref.scene_id}: not uploaded ({scene_key(ref.scene_id)})")
                continue
            info = await svc.storage.head(scene_key(ref.scene_id))
            if info is None:
                problems.append(f"{ref.scene_id}: not uploaded ({scene_key(ref.scene_id)})")
            elif info.content_type not in ("image/jpeg", "image/png", "image/webp"):
                problems.append(
                    f"{ref.scene_id}: content type {info.content_type!r} is "
                    "not an image type we accept"
                )
            elif info.size > svc.settings.max_upload_bytes:
                problems.append(f"{ref.scene_id}: {info.size} bytes is over the limit")
            elif info.size == 0:
                problems.append(f"{ref.scene_id}: the uploaded object is empty")
            else:
                fresh.append(
                    RegisteredScene(
                        scene_id=ref.scene_id,
                        r2_key_original=info.key,
                        content_type=info.content_type,
                        size_bytes=info.size,
                        filename=ref.filename,
                        etag=info.etag,
                    )
                )
        if problems:
            # All or nothing: registering part of a request would leave the caller guessing.
            raise Conflict("nothing registered: " + "; ".join(problems[:50]))
        warnings = await duplicate_warnings(svc, dataset_id, fresh)
        event_id = None
        if fresh:
            event = ScenesRegistered(
                dataset_id=dataset_id, scenes=tuple(fresh), org=caller_of(request).org
            )
            appended = await svc.append([event])
            event_id = event.event_id
            await svc.applied("scenes", appended.log_ids[0])
        return RegisterOut(
            registered=[s.scene_id for s in fresh],
            already_registered=[i for i in ids if i in known],
            event_id=event_id,
            warnings=warnings,
        )

    @get(
        "/{dataset_id:str}/scenes",
        opt={"role": "viewer"},
        summary="Scenes of a dataset, filtered, by scene id",
    )
    async def scenes(
        self,
        dataset_id: str,
        request: Request[Any, Any, Any],
        svc: Services,
        cursor: CursorAfterId = None,
        limit: Limit = 50,
        status: str | None = None,
        scene_type: Annotated[str | None, Parameter(pattern=SCENE_TYPE_PATTERN)] = None,
        style: Annotated[str | None, Parameter(pattern=STYLE_PATTERN)] = None,
        material: Annotated[str | None, Parameter(pattern=MATERIAL_PATTERN)] = None,
        category: Annotated[str | None, Parameter(pattern=CATEGORY_PATTERN)] = None,
        # schema_extra: Litestar 2.25 drops a minimum of 0 from the document (falsy).
        min_confidence: Annotated[
            float | None, Parameter(ge=0, le=1, schema_extra={"minimum": 0})
        ] = None,
    ) -> ScenePage:
        for value, taxonomy in (
            (scene_type, SCENE_TYPES),
            (style, STYLES),
            (material, MATERIALS),
            (category, FURNITURE),
        ):
            if value is not None and value not in taxonomy:
                raise ValidationException(f"{taxonomy.kind}: unknown code {value!r}")
        where = SceneFilter(
            status=status,
            scene_type=scene_type,
            style=style,
            material=material,
            category=category,
            min_confidence=min_confidence,
        )
        rows = await scenes.scenes_of(svc.db, dataset_id, where, cursor or None, limit + 1)
        if not rows:
            # An empty page: of a dataset with no such scenes, or of no dataset at all.
            await known_dataset(svc, dataset_id)
        link = svc.links.linker(origin(request.scope))
        items = rows[:limit]
        for item in items:
            # Registered scenes' originals are where their presigned uploads put them.
            item.image_url = link(scene_key(item.scene_id))
        more = len(rows) > limit
        return ScenePage(items=items, next_cursor=items[-1].scene_id if more else None)
