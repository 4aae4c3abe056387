"""Object storage: one S3-compatible bucket (Cloudflare R2 in production), presigned URLs.

The bucket is never public: browsers upload through presigned POST forms (a signed policy
binds each to its key, type and declared size) and view through presigned URLs; workers use
credentials. Keys follow the specification's prefixes (:func:`scene_key` and friends).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from modomo.domain.failures import InputError
from modomo.settings import Settings

READ_CHUNK = 256 * 1024
"""Bytes read from a download at a time: memory never exceeds the cap by more."""


def scene_key(scene_id: str) -> str:
    return f"scenes/{scene_id}.jpg"


def depth_key(scene_id: str) -> str:
    return f"depth/{scene_id}.png"


def mask_key(scene_id: str, object_id: str) -> str:
    return f"masks/{scene_id}/{object_id}.png"


def thumb_key(scene_id: str, object_id: str) -> str:
    return f"thumbs/{scene_id}/{object_id}.jpg"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str
    etag: str = ""
    """The server's ETag, unquoted (an MD5 of the bytes for a single PUT); it changes with
    every overwrite."""


@dataclass(frozen=True, slots=True)
class PresignedPost:
    """A browser-style upload form: POST ``url`` as multipart, ``fields`` then ``file``."""

    url: str
    fields: dict[str, str]


def error_code(exc: ClientError) -> str:
    """The S3 error code of ``exc`` (``NoSuchKey``, ``PreconditionFailed``, ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    """The HTTP status the server answered ``exc`` with (0 if unknown)."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class Storage:
    """A client for the bucket; use as ``async with Storage.open(settings) as storage``."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.bucket = settings.s3_bucket
        self.ttl_s = settings.presign_ttl_s

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings, *, attempts: int = 3) -> AsyncIterator[Storage]:
        """A client; ``attempts`` per request in botocore's own retry (the GPU worker
        asks for 1: it waits out storage outages itself, with no limit but its deadline)."""
        session = get_session()
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": attempts, "mode": "standard"},
            connect_timeout=settings.s3_timeout_s,
            read_timeout=settings.s3_timeout_s,
        )
        async with session.create_client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=config,
        ) as client:
            yield cls(client, settings)

    async def ensure_bucket(self, browser_origins: Sequence[str] = ()) -> None:
        """Create the bucket if it does not exist (local and test servers), and let
        ``browser_origins`` POST presigned upload forms and read images (CORS), which the
        review app does straight from the browser. In production set the same rules on the
        R2 bucket."""
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            await self.client.create_bucket(Bucket=self.bucket)
        if browser_origins:
            await self.client.put_bucket_cors(
                Bucket=self.bucket,
                CORSConfiguration={
                    "CORSRules": [
                        {
                            "AllowedOrigins": list(browser_origins),
                            "AllowedMethods": ["GET", "POST", "HEAD"],
                            "AllowedHeaders": ["*"],
                            "ExposeHeaders": ["ETag"],
                            "MaxAgeSeconds": 600,
                        }
                    ]
                },
            )

    async def presign_post(
        self, key: str, content_type: str, max_bytes: int, ttl_s: int | None = None
    ) -> PresignedPost:
        """A form that uploads ``key`` once (multipart POST, the file last) with exactly
        this Content-Type and at most ``max_bytes`` bytes: the signed policy's
        ``content-length-range``, which the storage itself enforces while receiving."""
        form: dict[str, Any] = await self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", 1, max_bytes],
            ],
            ExpiresIn=ttl_s or self.ttl_s,
        )
        return PresignedPost(url=str(form["url"]), fields=dict(form["fields"]))

    async def presign_get(self, key: str, ttl_s: int | None = None) -> str:
        url: str = await self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=ttl_s or self.ttl_s,
        )
        return url

    async def head(self, key: str) -> ObjectInfo | None:
        """Size and type of ``key``, or None when there is no such object."""
        try:
            reply = await self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(
            key=key,
            size=int(reply["ContentLength"]),
            content_type=str(reply.get("ContentType", "")),
            etag=str(reply.get("ETag", "")).strip('"'),
        )

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
        )

    async def get(self, key: str, *, max_bytes: int | None = None, etag: str = "") -> bytes:
        """The object's bytes, streamed: never more than ``max_bytes`` (+ one chunk) held.

        With ``etag`` (quoted or not) the GET is conditional (``If-Match``): an object
        overwritten since that ETag was seen is refused.

        Raises:
            InputError: the object changed since ``etag``, or is over ``max_bytes``.
            ClientError (``NoSuchKey`` for a missing object), and connection errors.
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        etag = etag.strip('"')
        if etag:
            params["IfMatch"] = f'"{etag}"'
        try:
            reply = await self.client.get_object(**params)
        except ClientError as exc:
            code, status = error_code(exc), http_status(exc)
            if code == "PreconditionFailed" or status == 412:
                raise InputError(
                    f"the original {key} changed after it was registered (ETag {etag} no "
                    "longer matches)"
                ) from None
            raise
        body = reply["Body"]
        try:
            served = str(reply.get("ETag") or "").strip('"')
            if etag and served and served != etag:
                raise InputError(
                    f"the original {key} changed after it was registered (ETag "
                    f"{served}, registered {etag})"
                )
            size = int(reply.get("ContentLength") or 0)
            if max_bytes is not None and size > max_bytes:
                raise InputError(
                    f"the original is {size} bytes, over the {max_bytes}-byte download limit"
                )
            data = bytearray()
            while chunk := await body.read(READ_CHUNK):
                data += chunk
                if max_bytes is not None and len(data) > max_bytes:
                    raise InputError(
                        f"the original is over the {max_bytes}-byte download limit "
                        f"(stopped after {len(data)} bytes)"
                    )
            return bytes(data)
        finally:
            body.close()
