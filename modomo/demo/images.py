"""Synthetic room photos: floor, walls, a window and furniture-like shapes in known colours.

Deterministic for a seed, so a demo run is repeatable and its palette predictable.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageFilter

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


def room(seed: int, width: int = 1024, height: int = 768) -> bytes:
    """One JPEG room scene."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), rng.choice(WALLS))
    draw = ImageDraw.Draw(image)
    horizon = int(height * rng.uniform(0.55, 0.7))
    draw.rectangle((0, horizon, width, height), fill=rng.choice(FLOORS))
    wx = rng.randint(width // 10, width // 2)
    draw.rectangle(
        (wx, height // 8, wx + width // 4, horizon - height // 6),
        fill=(185, 215, 240),
        outline=(250, 250, 250),
        width=8,
    )
    for _ in range(rng.randint(2, 5)):
        w, h = rng.randint(width // 8, width // 3), rng.randint(height // 8, height // 3)
        x = rng.randint(0, width - w)
        y = rng.randint(horizon - h // 2, height - h)
        colour = rng.choice(FURNITURE)
        if rng.random() < 0.5:
            draw.rounded_rectangle((x, y, x + w, y + h), radius=min(w, h) // 6, fill=colour)
        else:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
        draw.rectangle(
            (x + w // 10, y + h, x + w // 10 + 8, min(height, y + h + 20)), fill=(40, 35, 30)
        )
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88)
    return out.getvalue()
