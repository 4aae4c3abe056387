"""Palette: k-means in CIELAB over a pixel sample, 5 to 8 colours with their shares.

Clustering in L*a*b* groups colours as people see them (RGB distances do not). The image's
own distinct colours bound k from above, so a flat five-colour image gives exactly those
five colours; otherwise k grows from 5 until another cluster stops paying for itself.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from modomo.domain.events import Colour

SAMPLE = 20_000


def _lab(rgb01: np.ndarray) -> np.ndarray:
    import cv2

    # Float input in 0..1 gives true L*a*b* (uint8 input gives values scaled to 0..255).
    lab: np.ndarray = cv2.cvtColor(rgb01.reshape(-1, 1, 3).astype(np.float32), cv2.COLOR_RGB2Lab)
    return lab.reshape(-1, 3)


def _rgb(lab: np.ndarray) -> np.ndarray:
    import cv2

    rgb: np.ndarray = cv2.cvtColor(lab.reshape(-1, 1, 3).astype(np.float32), cv2.COLOR_Lab2RGB)
    clipped: np.ndarray = np.clip(rgb.reshape(-1, 3), 0.0, 1.0)
    return clipped


def extract_palette(
    image: Image.Image,
    *,
    min_colours: int = 5,
    max_colours: int = 8,
    merge_delta_e: float = 10.0,
    seed: int = 0,
) -> tuple[Colour, ...]:
    """The image's main colours, largest share first; shares add up to 1.

    One k-means fit with ``max_colours`` clusters (fewer when the image has fewer distinct
    colours), then the two closest clusters merge while more than ``min_colours`` remain
    and they are within ``merge_delta_e`` (CIE76 ΔE) of each other: near-duplicates of one
    wall colour become one entry instead of three.
    """
    from sklearn.cluster import KMeans

    pixels = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3) / 255.0
    rng = np.random.default_rng(seed)
    if len(pixels) > SAMPLE:
        pixels = pixels[rng.choice(len(pixels), SAMPLE, replace=False)]
    lab = _lab(pixels)
    distinct = len(np.unique(np.round(lab, 1), axis=0))
    k = max(1, min(max_colours, distinct))
    km = KMeans(n_clusters=k, n_init=2, random_state=seed).fit(lab)
    centres = [np.asarray(c, dtype=np.float64) for c in km.cluster_centers_]
    counts = [float(n) for n in np.bincount(km.labels_, minlength=k)]
    while len(centres) > min_colours:
        pairs = [
            (float(np.linalg.norm(centres[a] - centres[b])), a, b)
            for a in range(len(centres))
            for b in range(a + 1, len(centres))
        ]
        distance, a, b = min(pairs)
        if distance > merge_delta_e:
            break
        total = counts[a] + counts[b]
        centres[a] = (centres[a] * counts[a] + centres[b] * counts[b]) / total
        counts[a] = total
        del centres[b], counts[b]
    rgb = _rgb(np.array(centres))
    order = sorted(range(len(centres)), key=lambda i: -counts[i])
    grand = sum(counts)
    colours = []
    for i in order:
        r, g, b = (round(float(c) * 255) for c in rgb[i])
        lab_i = centres[i]
        colours.append(
            Colour(
                hex=f"#{r:02x}{g:02x}{b:02x}",
                lab=(
                    round(float(lab_i[0]), 2),
                    round(float(lab_i[1]), 2),
                    round(float(lab_i[2]), 2),
                ),
                share=round(counts[i] / grand, 4),
            )
        )
    return tuple(colours)
