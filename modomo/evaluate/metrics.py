"""The scores of an evaluation, each from a library that owns its definition.

- Detection and masks: pycocotools' ``COCOeval`` (``bbox`` and ``segm``): mAP@[.5:.95],
  mAP@.5, per-class AP; no AP is computed here by hand.
- Scene type (single-label), styles and materials (multi-label): scikit-learn's macro F1
  over the classes present in the truth or the predictions.
- Palette: scikit-image's CIEDE2000; for each true colour the nearest predicted one,
  weighted by the true colour's share of the image.
- Captions: length and vocabulary sanity (empty, repeated words, non-words), and how many
  of the true caption's content words they mention.

Every value is a finite float; a metric the golden set cannot measure (no objects, no
palettes) is left out rather than written as NaN.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modomo.export.coco import CATEGORY_CODES, box_pixels, box_polygon, rle

LOWER_IS_BETTER = frozenset({"palette_de00", "palette_de00_median"})
"""Metrics where a smaller value is better (the rest: larger is better)."""


@dataclass(slots=True)
class PredObject:
    category: str
    confidence: float
    bbox: tuple[float, float, float, float] | list[float]
    """Fractions of the image."""
    mask: np.ndarray | None = None
    """Boolean at the golden image's size."""
    materials: tuple[str, ...] = ()


@dataclass(slots=True)
class PredScene:
    scene_type: str | None = None
    styles: tuple[str, ...] = ()
    objects: list[PredObject] = field(default_factory=list)
    palette: list[tuple[tuple[float, float, float], float]] = field(default_factory=list)
    """``(lab, share)`` per colour."""
    caption: str | None = None


Metrics = dict[str, float]
PerClass = dict[str, dict[str, float]]


def _quiet(fn: Any, *args: Any) -> Any:
    """pycocotools prints progress to stdout; an evaluation prints its own report."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def coco_results(golden: dict[str, Any], preds: dict[int, PredScene]) -> list[dict[str, Any]]:
    """Predictions in COCO's results format (pixels of the golden images)."""
    sizes = {img["id"]: (img["width"], img["height"]) for img in golden["images"]}
    ids = {code: cid for cid, code in CATEGORY_CODES.items()}
    out = []
    for image_id, scene in sorted(preds.items()):
        width, height = sizes[image_id]
        for obj in scene.objects:
            if obj.category not in ids:
                continue
            seg: Any = (
                rle(obj.mask) if obj.mask is not None else [box_polygon(obj.bbox, width, height)]
            )
            out.append(
                {
                    "image_id": image_id,
                    "category_id": ids[obj.category],
                    "bbox": box_pixels(obj.bbox, width, height),
                    "score": float(obj.confidence),
                    "segmentation": seg,
                }
            )
    return out


def detection(golden: dict[str, Any], preds: dict[int, PredScene]) -> tuple[Metrics, PerClass]:
    """Box and mask AP (COCOeval) of ``preds`` against ``golden``'s annotations."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not golden["annotations"]:
        return {}, {}
    truth = COCO()
    truth.dataset = golden
    _quiet(truth.createIndex)
    results = coco_results(golden, preds)
    metrics: Metrics = {}
    per_class: PerClass = {}
    for iou_type, name in (("bbox", "bbox"), ("segm", "mask")):
        if not results:
            metrics[f"{name}_map"] = metrics[f"{name}_map50"] = 0.0
            continue
        found = _quiet(truth.loadRes, [dict(r) for r in results])
        scoring = COCOeval(truth, found, iou_type)
        scoring.params.imgIds = sorted(preds)
        _quiet(scoring.evaluate)
        _quiet(scoring.accumulate)
        _quiet(scoring.summarize)
        metrics[f"{name}_map"] = max(float(scoring.stats[0]), 0.0)
        metrics[f"{name}_map50"] = max(float(scoring.stats[1]), 0.0)
        precision = scoring.eval["precision"]  # [iou, recall, class, area, max dets]
        aps, ap50s = {}, {}
        for k, cat_id in enumerate(scoring.params.catIds):
            at_all = precision[:, :, k, 0, -1]
            if (at_all > -1).any():
                aps[CATEGORY_CODES[cat_id]] = round(float(at_all[at_all > -1].mean()), 6)
                first = at_all[0]
                ap50s[CATEGORY_CODES[cat_id]] = round(float(first[first > -1].mean()), 6)
        per_class[f"{name}_ap"] = aps
        per_class[f"{name}_ap50"] = ap50s
    return metrics, per_class


def macro_f1(
    truth: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
) -> tuple[float, dict[str, float]]:
    """Macro F1 of label sets (one set per item; single-label tasks give one-element sets)
    over the classes seen in the truth or the predictions; and F1 per true class."""
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    classes = sorted({c for labels in (*truth, *predicted) for c in labels})
    if not classes or not truth:
        return 0.0, {}
    binarizer = MultiLabelBinarizer(classes=classes)
    y_true = binarizer.fit_transform([list(t) for t in truth])
    y_pred = binarizer.transform([list(p) for p in predicted])
    overall = float(f1_score(y_true, y_pred, average="macro", zero_division=0))
    each = f1_score(y_true, y_pred, average=None, zero_division=0)
    seen = {c for labels in truth for c in labels}
    return overall, {c: round(float(v), 6) for c, v in zip(classes, each, strict=True) if c in seen}


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_objects(
    truth: Sequence[Sequence[float]], found: Sequence[PredObject], threshold: float = 0.5
) -> dict[int, int]:
    """Truth index → prediction index, greedily by confidence at box IoU ≥ ``threshold``
    whatever the categories (materials are scored on the objects both sides agree exist)."""
    pairs: dict[int, int] = {}
    for j in sorted(range(len(found)), key=lambda j: -found[j].confidence):
        best, best_iou = None, threshold
        for i, box in enumerate(truth):
            if i not in pairs:
                overlap = _iou(box, found[j].bbox)
                if overlap >= best_iou:
                    best, best_iou = i, overlap
        if best is not None:
            pairs[best] = j
    return pairs


def palette_distance(
    truth: Sequence[tuple[Sequence[float], float]], found: Sequence[tuple[Sequence[float], float]]
) -> float | None:
    """Share-weighted CIEDE2000 from each true colour to its nearest predicted colour."""
    from skimage.color import deltaE_ciede2000

    if not truth or not found:
        return None
    true_lab = np.array([lab for lab, _ in truth], dtype=float)
    shares = np.array([share for _, share in truth], dtype=float)
    found_lab = np.array([lab for lab, _ in found], dtype=float)
    distances = deltaE_ciede2000(true_lab[:, None, :], found_lab[None, :, :]).min(axis=1)
    return float((distances * shares).sum() / shares.sum()) if shares.sum() > 0 else None


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "with",
        "of",
        "in",
        "on",
        "at",
        "to",
        "is",
        "are",
        "its",
        "it",
        "this",
        "that",
    ]
)


def caption_metrics(truth: Sequence[str | None], found: Sequence[str | None]) -> Metrics:
    """Length and vocabulary sanity of ``found`` captions, and their recall of the true
    captions' content words."""
    words = [(c or "").lower().split() for c in found]
    if not words:
        return {}
    lengths = [len(w) for w in words]
    tokens = [t for w in words for t in w]
    repeated = sum(any(w[i] == w[i + 1] == w[i + 2] for i in range(len(w) - 2)) for w in words)
    recalls = []
    for true, mine in zip(truth, found, strict=True):
        content = {t for t in _WORD.findall((true or "").lower()) if t not in STOP_WORDS}
        if content:
            recalls.append(len(content & set(_WORD.findall((mine or "").lower()))) / len(content))
    out = {
        "caption_words_mean": float(np.mean(lengths)),
        "caption_words_max": float(max(lengths)),
        "caption_empty_share": sum(n == 0 for n in lengths) / len(lengths),
        "caption_repetition_share": repeated / len(words),
        "caption_distinct_words": float(len(set(tokens))),
        "caption_word_share": (
            sum(bool(_WORD.fullmatch(t)) for t in tokens) / len(tokens) if tokens else 0.0
        ),
    }
    if recalls:
        out["caption_truth_recall"] = float(np.mean(recalls))
    return out
