"""``GET /media/<key>``: a link from a scene's JSON, redirected to a presigned S3 URL."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get
from litestar.exceptions import PermissionDeniedException
from litestar.params import Parameter
from litestar.response import Redirect

from modomo.api.links import MEDIA_PATH
from modomo.api.services import Services


class MediaController(Controller):
    path = MEDIA_PATH
    tags = ["media"]

    @get(
        "/{key:path}",
        opt={"public": True},
        summary="An image of a scene: redirects to a presigned URL of the bucket",
        description="Needs no credentials: the link's `exp` and `sig` are them, as written "
        "into `GET /scenes/:id` and `GET /objects/:id`. 403 when the signature does not "
        "match or the link has expired.",
        status_code=302,
        raises=[PermissionDeniedException],
    )
    async def media(
        self,
        key: str,
        svc: Services,
        exp: Annotated[int, Parameter(ge=0, description="expiry, unix seconds")],
        sig: Annotated[
            str,
            Parameter(
                max_length=64, pattern=r"^[A-Za-z0-9_-]*$", description="the link's signature"
            ),
        ],
    ) -> Response[None]:
        object_key = key.lstrip("/")
        refused = svc.links.check(object_key, exp, sig)
        if refused is not None:
            raise PermissionDeniedException(refused)
        signed = await svc.presigned.get(object_key)
        max_age = svc.presigned.max_age_s(signed)
        return Redirect(
            signed.url,
            status_code=302,
            headers={"Cache-Control": f"private, max-age={max_age}" if max_age > 0 else "no-store"},
        )
