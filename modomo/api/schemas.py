"""Request bodies and the API's own replies: msgspec Structs, validated by Litestar, in the
OpenAPI. The shapes of what is read from the read models live in :mod:`modomo.read`.

Inbound bodies forbid unknown fields, so a typo is a 400 naming the field rather than a
silently ignored value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from modomo.domain.stages import StageFlags
from modomo.domain.taxonomies import FURNITURE, MATERIALS, SCENE_TYPES, STYLES, Taxonomy
from modomo.domain.text import find_problem


def code_pattern(taxonomy: Taxonomy) -> str:
    """A pattern matching exactly the codes of ``taxonomy`` (so OpenAPI lists them)."""
    return "^(" + "|".join(taxonomy.codes()) + ")$"


CATEGORY_PATTERN = code_pattern(FURNITURE)
MATERIAL_PATTERN = code_pattern(MATERIALS)
SCENE_TYPE_PATTERN = code_pattern(SCENE_TYPES)
STYLE_PATTERN = code_pattern(STYLES)
Category = Annotated[str, Meta(pattern=CATEGORY_PATTERN)]
Material = Annotated[str, Meta(pattern=MATERIAL_PATTERN)]

NO_NUL = "^[^\x00]*$"
"""PostgreSQL's text and jsonb cannot hold NUL, so no text field accepts one."""
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Text = Annotated[str, Meta(max_length=2000, pattern=NO_NUL)]
Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
ImageType = Literal["image/jpeg", "image/png", "image/webp"]
Fraction = Annotated[float, Meta(ge=0.0, le=1.0)]
AttrKey = Annotated[str, Meta(min_length=1, max_length=64)]


class In(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies.

    Every string in a body, dict keys included, must be text PostgreSQL can store (no NUL,
    no lone surrogate): anything else would enter the log and never reach a read model.
    msgspec runs this check as it decodes each body and reports a failure as a 400 naming
    the field (``$.files[0]`` plus ``filename: contains a NUL character``).
    """

    def __post_init__(self) -> None:
        found = find_problem(self)
        if found is not None:
            raise ValueError(f"{found[0]}: {found[1]}")


class DatasetIn(In, kw_only=True):
    name: Name
    description: Text = ""


class UploadFile(In, kw_only=True):
    filename: Annotated[str, Meta(min_length=1, max_length=255, pattern=NO_NUL)]
    content_type: ImageType
    size_bytes: Annotated[int, Meta(ge=1)]


class PresignIn(In, kw_only=True):
    files: Annotated[list[UploadFile], Meta(min_length=1, max_length=500)]


class Upload(msgspec.Struct, kw_only=True):
    """One scene image's upload form: POST ``url`` as ``multipart/form-data`` with every
    one of ``fields``, then the image as the part named ``file`` (last). The storage
    refuses a file over its declared ``size_bytes`` or of another type."""

    scene_id: str
    filename: str
    key: str
    url: str
    method: Literal["POST"]
    fields: dict[str, str]
    max_bytes: int
    expires_at: datetime


class PresignOut(msgspec.Struct, kw_only=True):
    uploads: list[Upload]


class SceneRef(In, kw_only=True):
    scene_id: Id
    filename: Annotated[str, Meta(max_length=255, pattern=NO_NUL)] = ""


class RegisterIn(In, kw_only=True):
    scenes: Annotated[list[SceneRef], Meta(min_length=1, max_length=1000)]


class DuplicateWarning(msgspec.Struct, kw_only=True):
    """A scene registered now whose bytes were already registered (same ETag)."""

    scene_id: str
    duplicate_of: str
    dataset_id: str
    message: str


class RegisterOut(msgspec.Struct, kw_only=True):
    registered: list[str]
    already_registered: list[str]
    event_id: str | None
    warnings: list[DuplicateWarning] = msgspec.field(default_factory=list)
    """Uploads that duplicate a registered scene: registered all the same, since the same
    photo may rightly belong to two datasets."""


class JobIn(In, kw_only=True):
    dataset_id: Id
    scene_ids: Annotated[list[Id], Meta(min_length=1, max_length=100_000)] | None = None
    stages: StageFlags = msgspec.field(default_factory=StageFlags)
    resize_max_px: Annotated[int, Meta(ge=256, le=4096)] = 1280


class ObjectPatch(In, kw_only=True):
    """Fields left out (or null) stay as they are; a patch that changes nothing is a no-op.
    ``bbox`` is two opposite corners as fractions of the image, in either order."""

    category: Category | None = None
    materials: Annotated[list[Material], Meta(max_length=20)] | None = None
    bbox: tuple[Fraction, Fraction, Fraction, Fraction] | None = None
    attrs: (
        Annotated[
            dict[
                Annotated[AttrKey, Meta(pattern=NO_NUL)],
                Annotated[str, Meta(max_length=2000, pattern=NO_NUL)] | int | float | bool,
            ],
            Meta(max_length=50),
        ]
        | None
    ) = None


class ReviewIn(In, kw_only=True):
    scene_id: Id
    object_id: Id | None = None
    verdict: Literal["approve", "reject", "fix"]
    note: Text = ""


class Accepted(msgspec.Struct, kw_only=True):
    """A write recorded in the log whose projection is not visible yet."""

    event_id: str
    log_id: str
    detail: str = "recorded; the read model will show it shortly"


class Health(msgspec.Struct, kw_only=True):
    ok: bool
    status: Literal["ok", "degraded"] = "ok"
    """``degraded`` (with a 503) while Redis or PostgreSQL does not answer."""
    redis: str
    postgres: str
