"""Synthetic room photos that know what they show.

A room is a wall, a floor, a window and two to five furniture-like shapes in known colours.
:func:`painted_room` also returns the truth the generator painted: every object's category,
material, visible mask and box, the scene type, styles, a caption and the palette with each
colour's share of the pixels. The golden set (:mod:`modomo.synthetic.golden`) writes that
truth as COCO with Modomo's extension fields.

Deterministic for a seed. The pixels come from the same random draws as before the truth
was added (labels come from a second generator), so photos of a seed never change.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from modomo.domain.taxonomies import SCENE_TYPES, STYLES

WALLS = [(232, 226, 214), (205, 214, 222), (224, 208, 190), (200, 210, 196)]
FLOORS = [(150, 111, 75), (180, 150, 115), (120, 120, 125), (170, 160, 150)]
FURNITURE = [
    (70, 90, 140),
    (160, 60, 50),
    (60, 110, 80),
    (220, 190, 80),
    (90, 70, 60),
    (240, 240, 235),
]
WINDOW_GLASS = (185, 215, 240)
WINDOW_FRAME = (250, 250, 250)
LEGS = (40, 35, 30)

MATERIAL_OF: dict[tuple[int, int, int], str] = {
    (70, 90, 140): "fabric",
    (160, 60, 50): "velvet",
    (60, 110, 80): "linen",
    (220, 190, 80): "leather",
    (90, 70, 60): "walnut",
    (240, 240, 235): "plastic",
}
"""The material each furniture colour stands for."""

ROOM_TYPES = ("living_room", "bedroom", "dining_room", "home_office")
"""Scene types the generator declares (its shapes fit any of them)."""


@dataclass(frozen=True, slots=True)
class PaintedObject:
    """One object as painted: its visible pixels and what it is."""

    category: str
    materials: tuple[str, ...]
    mask: np.ndarray
    """Boolean ``(height, width)``: the pixels of this object left visible."""

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """The visible pixels' box, ``(x0, y0, x1, y1)`` as fractions of the image."""
        ys, xs = np.nonzero(self.mask)
        h, w = self.mask.shape
        return (
            round(float(xs.min()) / w, 5),
            round(float(ys.min()) / h, 5),
            round(float(xs.max() + 1) / w, 5),
            round(float(ys.max() + 1) / h, 5),
        )


@dataclass(frozen=True, slots=True)
class PaintedRoom:
    """A JPEG room photo and the truth behind it."""

    jpeg: bytes
    width: int
    height: int
    scene_type: str
    styles: tuple[str, ...]
    objects: tuple[PaintedObject, ...]
    palette: tuple[tuple[str, float], ...]
    """``(hex, share)`` of every painted colour, largest share first."""
    caption: str


def room(seed: int, width: int = 1024, height: int = 768) -> bytes:
    """One JPEG room scene."""
    return painted_room(seed, width, height).jpeg


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def painted_room(seed: int, width: int = 1024, height: int = 768) -> PaintedRoom:
    """One JPEG room scene with its ground truth."""
    rng = random.Random(seed)
    labels = random.Random(f"labels:{seed}")
    wall = rng.choice(WALLS)
    image = Image.new("RGB", (width, height), wall)
    # Which object (1..n) or surface owns each pixel, painted with the same shapes.
    owner = Image.new("I", (width, height), 0)
    draw, paint = ImageDraw.Draw(image), ImageDraw.Draw(owner)
    colour_ids: dict[tuple[int, int, int], int] = {}

    def colour_id(rgb: tuple[int, int, int]) -> int:
        return colour_ids.setdefault(rgb, len(colour_ids))

    # Pixel colours are tracked in a second map: object masks and palette shares differ.
    colours = Image.new("I", (width, height), colour_id(wall))
    tint = ImageDraw.Draw(colours)

    horizon = int(height * rng.uniform(0.55, 0.7))
    floor = rng.choice(FLOORS)
    draw.rectangle((0, horizon, width, height), fill=floor)
    tint.rectangle((0, horizon, width, height), fill=colour_id(floor))
    wx = rng.randint(width // 10, width // 2)
    window = (wx, height // 8, wx + width // 4, horizon - height // 6)
    draw.rectangle(window, fill=WINDOW_GLASS, outline=WINDOW_FRAME, width=8)
    tint.rectangle(window, fill=colour_id(WINDOW_GLASS), outline=colour_id(WINDOW_FRAME), width=8)
    paint.rectangle(window, fill=1)
    kinds: list[tuple[str, tuple[str, ...]]] = [("window", ("glass",))]
    for _ in range(rng.randint(2, 5)):
        w, h = rng.randint(width // 8, width // 3), rng.randint(height // 8, height // 3)
        x = rng.randint(0, width - w)
        y = rng.randint(horizon - h // 2, height - h)
        colour = rng.choice(FURNITURE)
        index = len(kinds) + 1
        box = (x, y, x + w, y + h)
        if rng.random() < 0.5:
            draw.rounded_rectangle(box, radius=min(w, h) // 6, fill=colour)
            tint.rounded_rectangle(box, radius=min(w, h) // 6, fill=colour_id(colour))
            paint.rounded_rectangle(box, radius=min(w, h) // 6, fill=index)
            category = "sofa" if w > 1.6 * h else "armchair"
        else:
            draw.ellipse(box, fill=colour)
            tint.ellipse(box, fill=colour_id(colour))
            paint.ellipse(box, fill=index)
            category = "coffee_table" if w > 1.6 * h else "ottoman"
        leg = (x + w // 10, y + h, x + w // 10 + 8, min(height, y + h + 20))
        draw.rectangle(leg, fill=LEGS)
        tint.rectangle(leg, fill=colour_id(LEGS))
        paint.rectangle(leg, fill=index)
        kinds.append((category, (MATERIAL_OF[colour],)))
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88)

    owners = np.asarray(owner, dtype=np.int32)
    objects = []
    for index, (category, materials) in enumerate(kinds, start=1):
        mask = owners == index
        if mask.any():  # an object hidden behind later ones is not in the picture
            objects.append(PaintedObject(category=category, materials=materials, mask=mask))
    counts = np.bincount(np.asarray(colours, dtype=np.int32).ravel(), minlength=len(colour_ids))
    total = float(counts.sum())
    palette = sorted(
        ((_hex(rgb), round(float(counts[i]) / total, 5)) for rgb, i in colour_ids.items()),
        key=lambda item: (-item[1], item[0]),
    )
    scene_type = labels.choice(ROOM_TYPES)
    styles = tuple(sorted(labels.sample(STYLES.codes(), labels.randint(1, 2))))
    names = [o.category.replace("_", " ") for o in objects if o.category != "window"]
    caption = (
        f"a {STYLES.get(styles[0]).name.lower()} "
        f"{SCENE_TYPES.get(scene_type).name.lower()} with "
        + (", ".join(_article(n) for n in names) or "nothing")
        + " and a window"
    )
    return PaintedRoom(
        jpeg=out.getvalue(),
        width=width,
        height=height,
        scene_type=scene_type,
        styles=styles,
        objects=tuple(objects),
        palette=tuple(p for p in palette if p[1] > 0),
        caption=caption,
    )


def _article(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
