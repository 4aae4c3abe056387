"""Uploads through the API's presigned POST forms, as a browser sends them."""

from __future__ import annotations

from typing import Any

import httpx


def form_parts(
    upload: dict[str, Any], body: bytes, content_type: str | None = None
) -> dict[str, Any]:
    """``data`` and ``files`` for httpx: the form's fields, then the file (last)."""
    fields: dict[str, str] = dict(upload["fields"])
    kind = content_type or fields.get("Content-Type", "application/octet-stream")
    return {"data": fields, "files": {"file": (upload.get("filename") or "f", body, kind)}}


async def post_upload(
    plain: httpx.AsyncClient, upload: dict[str, Any], body: bytes, content_type: str | None = None
) -> httpx.Response:
    """POST ``body`` through one upload form of ``POST /datasets/:id/presign``."""
    assert upload["method"] == "POST"
    return await plain.post(upload["url"], **form_parts(upload, body, content_type))
