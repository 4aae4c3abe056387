"""CLIP stages: scene type (zero-shot), styles and materials (multi-label).

Scores are the softmax over the taxonomy's prompts of CLIP's scaled cosine similarities.
Multi-label keeps the top term always and every other term whose share reaches the
threshold (at most ``top_k``): CLIP's prompt scores compete with each other, so a fixed
share works across taxonomies of different sizes better than raw cosine similarity does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from modomo.domain.events import Embedding, Scored
from modomo.domain.taxonomies import MATERIALS, SCENE_TYPES, STYLES, Taxonomy
from modomo.gpu.models import Clip


def _probabilities(clip: Clip, images: Sequence[Image.Image], taxonomy: Taxonomy) -> Any:
    return _embedded(clip, images, taxonomy)[0]


def _embedded(clip: Clip, images: Sequence[Image.Image], taxonomy: Taxonomy) -> tuple[Any, Any]:
    """The taxonomy's probabilities and the images' normalised features, one forward."""
    text = clip.text_features(taxonomy)
    feats = clip.image_features(list(images))
    return (clip.logit_scale * feats @ text.T).softmax(dim=-1).cpu(), feats.cpu()


def embedding(features: Any) -> Embedding:
    """One image's normalised CLIP features as an event's embedding (float16)."""
    return Embedding.of([float(v) for v in features.tolist()])


def _ranked(probs: Any, taxonomy: Taxonomy) -> list[Scored]:
    codes = taxonomy.codes()
    order = probs.argsort(descending=True).tolist()
    return [Scored(code=codes[i], score=round(float(probs[i]), 5)) for i in order]


def classify_scenes(
    clip: Clip, images: Sequence[Image.Image], alternatives: int = 3
) -> list[tuple[Scored, tuple[Scored, ...]]]:
    """Per image: the most likely scene type and the next ``alternatives``."""
    return [(top, rest) for top, rest, _ in classify_scenes_embedded(clip, images, alternatives)]


def classify_scenes_embedded(
    clip: Clip, images: Sequence[Image.Image], alternatives: int = 3
) -> list[tuple[Scored, tuple[Scored, ...], Embedding]]:
    """:func:`classify_scenes` plus each image's embedding, from the same forward pass."""
    probs, feats = _embedded(clip, images, SCENE_TYPES)
    out = []
    for row, features in zip(probs, feats, strict=True):
        ranked = _ranked(row, SCENE_TYPES)
        out.append((ranked[0], tuple(ranked[1 : 1 + alternatives]), embedding(features)))
    return out


def multi_label(probs: Any, taxonomy: Taxonomy, threshold: float, top_k: int) -> tuple[Scored, ...]:
    """The top term plus every term with a share of at least ``threshold``, best first."""
    ranked = _ranked(probs, taxonomy)
    kept = [ranked[0], *(s for s in ranked[1:] if s.score >= threshold)]
    return tuple(kept[:top_k])


def classify_styles(
    clip: Clip, images: Sequence[Image.Image], threshold: float, top_k: int = 3
) -> list[tuple[Scored, ...]]:
    """Per image: its styles, multi-label."""
    probs = _probabilities(clip, images, STYLES)
    return [multi_label(row, STYLES, threshold, top_k) for row in probs]


def classify_materials(
    clip: Clip, crops: Sequence[Image.Image], threshold: float, top_k: int = 3
) -> list[tuple[Scored, ...]]:
    """Per object crop: its materials, multi-label; every crop in one forward."""
    return [scored for scored, _ in classify_materials_embedded(clip, crops, threshold, top_k)]


def classify_materials_embedded(
    clip: Clip, crops: Sequence[Image.Image], threshold: float, top_k: int = 3
) -> list[tuple[tuple[Scored, ...], Embedding]]:
    """:func:`classify_materials` plus each crop's embedding, from the same forward pass."""
    if not crops:
        return []
    probs, feats = _embedded(clip, crops, MATERIALS)
    return [
        (multi_label(row, MATERIALS, threshold, top_k), embedding(features))
        for row, features in zip(probs, feats, strict=True)
    ]
