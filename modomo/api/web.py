"""The review app: the static files of ``web/`` built by Vite, served at ``/app``.

A path that names a built file gets it (hashed assets are cached for a year, since a new
build gives them new names); any other path under ``/app`` gets ``index.html``, so the
app's own URLs (``/app/scenes/<id>``) load directly. The files are public; every API call
the app makes carries the caller's credentials.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from litestar import Controller, Response, get
from litestar.response import File, Redirect

import modomo
from modomo.api.services import Services

_NOT_BUILT = (
    "The review app is not built. Run `bash scripts/bootstrap.sh` (or `npm --prefix web ci "
    "&& npm --prefix web run build`), or point MODOMO_WEB_DIR at a built app."
)


def web_dir(configured: str) -> Path:
    """Where the built app is: ``configured`` or ``web/dist`` beside the package."""
    if configured:
        return Path(configured)
    return Path(modomo.__file__).resolve().parent.parent / "web" / "dist"


class AppController(Controller):
    """The built single-page app and its assets."""

    path = "/app"
    opt = {"public": True}
    include_in_schema = False

    @get(["/", "/{path:path}"], sync_to_thread=False)
    def serve(self, svc: Services, path: str = "/") -> Response[str] | File:
        root = web_dir(svc.settings.web_dir).resolve()
        index = root / "index.html"
        if not index.is_file():
            return Response(_NOT_BUILT, status_code=503, media_type="text/plain")
        wanted = (root / path.lstrip("/")).resolve()
        if wanted.is_file() and wanted.is_relative_to(root):
            immutable = wanted.parent.name == "assets"
            return File(
                wanted,
                content_disposition_type="inline",
                media_type=mimetypes.guess_type(wanted.name)[0] or "application/octet-stream",
                headers={
                    "Cache-Control": "public, max-age=31536000, immutable"
                    if immutable
                    else "no-cache"
                },
            )
        if Path(path).suffix:  # a missing asset is a 404, not the app's page
            return Response(
                f"no file {path!r} in the app", status_code=404, media_type="text/plain"
            )
        return File(
            index,
            content_disposition_type="inline",
            media_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )


class RootController(Controller):
    path = "/"
    opt = {"public": True}
    include_in_schema = False

    @get("/", sync_to_thread=False)
    def root(self) -> Redirect:
        """The API's root leads a browser to the app."""
        return Redirect("/app/")
