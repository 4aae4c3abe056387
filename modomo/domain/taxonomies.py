"""Controlled vocabularies for Modomo labels: scene types, styles, materials, furniture.

This module is pure data: it performs no I/O and has no side effects beyond
building the constants below at import time.

Stability contract
------------------
Every :class:`Term` has a ``code`` that is stored verbatim in events, database
indexes and URLs. Codes are therefore stable forever:

* never rename or reuse a code; old events and indexes would silently break;
* to extend a vocabulary, add a new term with a new code;
* a term's display ``name`` and its model ``prompt`` may change freely, because
  nothing persistent refers to them.

``prompt`` is a short natural-language phrase fed to text-conditioned models
(CLIP zero-shot classification, GroundingDINO open-vocabulary detection).
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

__all__ = [
    "COCO_TO_CATEGORY",
    "FURNITURE",
    "MATERIALS",
    "SCENE_TYPES",
    "STYLES",
    "TAXONOMIES",
    "Taxonomy",
    "Term",
]

_CODE_RE: Final = re.compile(r"^[a-z][a-z0-9_]*$")


class Term(msgspec.Struct, frozen=True):
    """One entry of a vocabulary.

    Attributes:
        code: Stable snake_case ASCII identifier, persisted in events, indexes
            and URLs. Never renamed.
        name: Human-readable display name; may change.
        prompt: Short natural-language phrase used as a CLIP / GroundingDINO
            text prompt; may change.
    """

    code: str
    name: str
    prompt: str


class Taxonomy(msgspec.Struct, frozen=True):
    """An ordered, immutable vocabulary of :class:`Term` objects of one kind.

    Codes are validated on construction: each must match ``^[a-z][a-z0-9_]*$``
    and be unique within the taxonomy. Term order is preserved and meaningful
    (e.g. it is the order of prompts handed to a zero-shot classifier).
    """

    kind: str
    terms: tuple[Term, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for term in self.terms:
            if not _CODE_RE.match(term.code):
                raise ValueError(
                    f"invalid {self.kind} code {term.code!r}: must match {_CODE_RE.pattern}"
                )
            if term.code in seen:
                raise ValueError(f"duplicate {self.kind} code {term.code!r}")
            seen.add(term.code)

    def _index(self) -> dict[str, Term]:
        return {term.code: term for term in self.terms}

    def codes(self) -> tuple[str, ...]:
        """Return all codes, in term order."""
        return tuple(term.code for term in self.terms)

    def names(self) -> tuple[str, ...]:
        """Return all display names, in term order."""
        return tuple(term.name for term in self.terms)

    def prompts(self) -> tuple[str, ...]:
        """Return all model prompts, in term order."""
        return tuple(term.prompt for term in self.terms)

    def get(self, code: str) -> Term:
        """Return the term with ``code``.

        Raises:
            KeyError: if ``code`` is not part of this taxonomy.
        """
        try:
            return self._index()[code]
        except KeyError:
            raise KeyError(f"unknown {self.kind} code {code!r}") from None

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._index()


SCENE_TYPES: Final = Taxonomy(
    kind="scene_type",
    terms=(
        Term("living_room", "Living room", "a photo of a living room"),
        Term("bedroom", "Bedroom", "a photo of a bedroom"),
        Term("kitchen", "Kitchen", "a photo of a kitchen"),
        Term("dining_room", "Dining room", "a photo of a dining room"),
        Term("bathroom", "Bathroom", "a photo of a bathroom"),
        Term("home_office", "Home office", "a photo of a home office"),
        Term("kids_room", "Kids' room", "a photo of a kids room"),
        Term("nursery", "Nursery", "a photo of a nursery"),
        Term("hallway", "Hallway", "a photo of a hallway"),
        Term("entryway", "Entryway", "a photo of an entryway"),
        Term("staircase", "Staircase", "a photo of a staircase"),
        Term("laundry_room", "Laundry room", "a photo of a laundry room"),
        Term("walk_in_closet", "Walk-in closet", "a photo of a walk-in closet"),
        Term("home_theater", "Home theater", "a photo of a home theater"),
        Term("game_room", "Game room", "a photo of a game room"),
        Term("library", "Library", "a photo of a home library"),
        Term("sunroom", "Sunroom", "a photo of a sunroom"),
        Term("basement", "Basement", "a photo of a basement"),
        Term("attic", "Attic", "a photo of an attic"),
        Term("garage", "Garage", "a photo of a garage"),
        Term("balcony", "Balcony", "a photo of a balcony"),
        Term("patio", "Patio", "a photo of a patio"),
        Term("studio_apartment", "Studio apartment", "a photo of a studio apartment"),
        Term("open_plan_living", "Open-plan living", "a photo of an open-plan living space"),
        Term("utility_room", "Utility room", "a photo of a utility room"),
        Term("home_gym", "Home gym", "a photo of a home gym"),
        Term("wine_cellar", "Wine cellar", "a photo of a wine cellar"),
    ),
)

STYLES: Final = Taxonomy(
    kind="style",
    terms=(
        Term("modern", "Modern", "a modern style interior"),
        Term("contemporary", "Contemporary", "a contemporary style interior"),
        Term("minimalist", "Minimalist", "a minimalist style interior"),
        Term("scandinavian", "Scandinavian", "a scandinavian style interior"),
        Term("industrial", "Industrial", "an industrial style interior"),
        Term("mid_century_modern", "Mid-century modern", "a mid-century modern style interior"),
        Term("bohemian", "Bohemian", "a bohemian style interior"),
        Term("farmhouse", "Farmhouse", "a farmhouse style interior"),
        Term("coastal", "Coastal", "a coastal style interior"),
        Term("traditional", "Traditional", "a traditional style interior"),
        Term("transitional", "Transitional", "a transitional style interior"),
        Term("rustic", "Rustic", "a rustic style interior"),
        Term("art_deco", "Art Deco", "an art deco style interior"),
        Term("japandi", "Japandi", "a japandi style interior"),
        Term("mediterranean", "Mediterranean", "a mediterranean style interior"),
        Term("french_country", "French country", "a french country style interior"),
        Term("hollywood_regency", "Hollywood Regency", "a hollywood regency style interior"),
        Term("maximalist", "Maximalist", "a maximalist style interior"),
        Term("shabby_chic", "Shabby chic", "a shabby chic style interior"),
        Term("tropical", "Tropical", "a tropical style interior"),
        Term("eclectic", "Eclectic", "an eclectic style interior"),
        Term("victorian", "Victorian", "a victorian style interior"),
    ),
)

MATERIALS: Final = Taxonomy(
    kind="material",
    terms=(
        Term("wood", "Wood", "wood"),
        Term("oak", "Oak", "oak wood"),
        Term("walnut", "Walnut", "walnut wood"),
        Term("pine", "Pine", "pine wood"),
        Term("metal", "Metal", "metal"),
        Term("steel", "Steel", "steel"),
        Term("brass", "Brass", "brass"),
        Term("glass", "Glass", "glass"),
        Term("marble", "Marble", "marble"),
        Term("granite", "Granite", "granite"),
        Term("concrete", "Concrete", "concrete"),
        Term("ceramic", "Ceramic", "ceramic"),
        Term("leather", "Leather", "leather"),
        Term("fabric", "Fabric", "fabric upholstery"),
        Term("velvet", "Velvet", "velvet"),
        Term("linen", "Linen", "linen"),
        Term("wool", "Wool", "wool"),
        Term("rattan", "Rattan", "rattan"),
        Term("wicker", "Wicker", "wicker"),
        Term("plastic", "Plastic", "plastic"),
        Term("stone", "Stone", "stone"),
        Term("bamboo", "Bamboo", "bamboo"),
        Term("brick", "Brick", "brick"),
        Term("terrazzo", "Terrazzo", "terrazzo"),
    ),
)

FURNITURE: Final = Taxonomy(
    kind="category",
    terms=(
        Term("sofa", "Sofa", "a sofa"),
        Term("sectional_sofa", "Sectional sofa", "a sectional sofa"),
        Term("armchair", "Armchair", "an armchair"),
        Term("chair", "Chair", "a chair"),
        Term("dining_chair", "Dining chair", "a dining chair"),
        Term("office_chair", "Office chair", "an office chair"),
        Term("stool", "Stool", "a stool"),
        Term("bench", "Bench", "a bench"),
        Term("ottoman", "Ottoman", "an ottoman"),
        Term("coffee_table", "Coffee table", "a coffee table"),
        Term("side_table", "Side table", "a side table"),
        Term("dining_table", "Dining table", "a dining table"),
        Term("desk", "Desk", "a desk"),
        Term("console_table", "Console table", "a console table"),
        Term("tv_stand", "TV stand", "a tv stand"),
        Term("bookshelf", "Bookshelf", "a bookshelf"),
        Term("shelf", "Shelf", "a wall shelf"),
        Term("cabinet", "Cabinet", "a cabinet"),
        Term("sideboard", "Sideboard", "a sideboard"),
        Term("dresser", "Dresser", "a dresser"),
        Term("wardrobe", "Wardrobe", "a wardrobe"),
        Term("nightstand", "Nightstand", "a nightstand"),
        Term("bed", "Bed", "a bed"),
        Term("crib", "Crib", "a crib"),
        Term("mirror", "Mirror", "a mirror"),
        Term("lamp", "Lamp", "a lamp"),
        Term("floor_lamp", "Floor lamp", "a floor lamp"),
        Term("table_lamp", "Table lamp", "a table lamp"),
        Term("pendant_light", "Pendant light", "a pendant light"),
        Term("chandelier", "Chandelier", "a chandelier"),
        Term("rug", "Rug", "a rug"),
        Term("curtain", "Curtain", "a curtain"),
        Term("blinds", "Blinds", "window blinds"),
        Term("cushion", "Cushion", "a cushion"),
        Term("plant", "Plant", "a potted plant"),
        Term("vase", "Vase", "a vase"),
        Term("artwork", "Artwork", "a framed artwork"),
        Term("clock", "Clock", "a clock"),
        Term("television", "Television", "a television"),
        Term("fireplace", "Fireplace", "a fireplace"),
        Term("sink", "Sink", "a sink"),
        Term("bathtub", "Bathtub", "a bathtub"),
        Term("toilet", "Toilet", "a toilet"),
        Term("shower", "Shower", "a shower"),
        Term("refrigerator", "Refrigerator", "a refrigerator"),
        Term("oven", "Oven", "an oven"),
        Term("microwave", "Microwave", "a microwave"),
        Term("kitchen_island", "Kitchen island", "a kitchen island"),
        Term("window", "Window", "a window"),
        Term("door", "Door", "a door"),
    ),
)

TAXONOMIES: Final[dict[str, Taxonomy]] = {
    t.kind: t for t in (SCENE_TYPES, STYLES, MATERIALS, FURNITURE)
}

# YOLOv8 (COCO-80) class names that are furniture or decor, mapped to FURNITURE
# codes. COCO classes absent here (people, vehicles, food, "book", ...) are not
# labelled as furniture.
COCO_TO_CATEGORY: Final[dict[str, str]] = {
    "couch": "sofa",
    "chair": "chair",
    "bed": "bed",
    "dining table": "dining_table",
    "bench": "bench",
    "toilet": "toilet",
    "tv": "television",
    "potted plant": "plant",
    "vase": "vase",
    "clock": "clock",
    "sink": "sink",
    "refrigerator": "refrigerator",
    "oven": "oven",
    "microwave": "microwave",
}
