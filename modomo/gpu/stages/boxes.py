"""Box helpers shared by the object stages (fractions of width and height, x0 y0 x1 y1)."""

from __future__ import annotations

from modomo.domain.events import BBox


def clamp_box(x0: float, y0: float, x1: float, y1: float) -> BBox:
    """A box inside the unit square with its corners ordered, rounded to 5 decimals."""
    xs = sorted((min(max(x0, 0.0), 1.0), min(max(x1, 0.0), 1.0)))
    ys = sorted((min(max(y0, 0.0), 1.0), min(max(y1, 0.0), 1.0)))
    return (round(xs[0], 5), round(ys[0], 5), round(xs[1], 5), round(ys[1], 5))


def iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def to_pixels(box: BBox, width: int, height: int) -> tuple[int, int, int, int]:
    """The box in whole pixels, at least one pixel wide and high."""
    x0, y0 = int(box[0] * width), int(box[1] * height)
    x1 = max(round(box[2] * width), x0 + 1)
    y1 = max(round(box[3] * height), y0 + 1)
    return x0, y0, min(x1, width), min(y1, height)
