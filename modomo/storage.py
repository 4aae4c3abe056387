"""Object storage: one S3-compatible bucket (Cloudflare R2 in production), presigned URLs.

The bucket is never public: browsers upload and view through presigned URLs, workers use
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

from modomo.settings import Settings


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
    """The server's ETag, unquoted (an MD5 of the bytes for a single PUT)."""


class Storage:
    """A client for the bucket; use as ``async with Storage.open(settings) as storage``."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.bucket = settings.s3_bucket
        self.ttl_s = settings.presign_ttl_s

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[Storage]:
        session = get_session()
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
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
        ``browser_origins`` PUT through presigned URLs and read images (CORS), which the
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
                            "AllowedMethods": ["GET", "PUT", "HEAD"],
                            "AllowedHeaders": ["*"],
                            "ExposeHeaders": ["ETag"],
                            "MaxAgeSeconds": 600,
                        }
                    ]
                },
            )

    async def presign_put(self, key: str, content_type: str, ttl_s: int | None = None) -> str:
        """A URL that accepts one PUT of ``key`` with exactly this Content-Type."""
        url: str = await self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=ttl_s or self.ttl_s,
        )
        return url

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

    async def get(self, key: str) -> bytes:
        reply = await self.client.get_object(Bucket=self.bucket, Key=key)
        async with reply["Body"] as body:
            data: bytes = await body.read()
        return data
