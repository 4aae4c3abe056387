"""The vocabularies the models label with, for pickers and filters in the app."""

from __future__ import annotations

import msgspec
from litestar import Controller, get

from modomo.domain.taxonomies import TAXONOMIES


class TermOut(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str


class TaxonomiesController(Controller):
    path = "/taxonomies"
    tags = ["system"]

    @get(
        "/",
        opt={"role": "viewer"},
        summary="Every vocabulary: scene types, styles, materials, furniture categories",
        description="Codes in their fixed order (the order the app's number keys follow for "
        "categories) with display names, keyed by kind.",
        sync_to_thread=False,
    )
    def taxonomies(self) -> dict[str, list[TermOut]]:
        return {
            kind: [TermOut(code=t.code, name=t.name) for t in taxonomy.terms]
            for kind, taxonomy in TAXONOMIES.items()
        }
