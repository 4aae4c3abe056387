"""Evaluation metrics on hand-made cases whose answers are known in advance.

COCO's AP interpolates precision at 101 recall points and averages over the IoU thresholds
0.50, 0.55, ..., 0.95, so:

- a perfect prediction scores AP 1 at every threshold;
- a box shifted to IoU 0.625 matches at 0.50, 0.55 and 0.60 only: mAP 3/10, AP50 1;
- one object found of two, perfectly: precision 1 up to recall 0.5, nothing beyond, so the
  interpolated AP is 51/101 at every threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modomo.evaluate.metrics import (
    PredObject,
    PredScene,
    caption_metrics,
    detection,
    macro_f1,
    match_objects,
    palette_distance,
)
from modomo.evaluate.run import compare
from modomo.export.coco import CATEGORY_IDS, categories, rle

W = H = 100


def _mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _golden(*boxes: tuple[int, int, int, int]) -> dict[str, Any]:
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 1,
                "category_id": CATEGORY_IDS["sofa"],
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": float((x1 - x0) * (y1 - y0)),
                "iscrowd": 0,
                "segmentation": rle(_mask(x0, y0, x1, y1)),
            }
            for i, (x0, y0, x1, y1) in enumerate(boxes)
        ],
        "categories": categories(),
    }


def _found(*boxes: tuple[int, int, int, int], masks: bool = True) -> dict[int, PredScene]:
    return {
        1: PredScene(
            objects=[
                PredObject(
                    category="sofa",
                    confidence=0.9,
                    bbox=(x0 / W, y0 / H, x1 / W, y1 / H),
                    mask=_mask(x0, y0, x1, y1) if masks else None,
                )
                for x0, y0, x1, y1 in boxes
            ]
        )
    }


def test_a_perfect_prediction_scores_one() -> None:
    metrics, per_class = detection(_golden((10, 10, 50, 50)), _found((10, 10, 50, 50)))
    assert metrics == pytest.approx(
        {"bbox_map": 1.0, "bbox_map50": 1.0, "mask_map": 1.0, "mask_map50": 1.0}
    )
    assert per_class["bbox_ap"] == {"sofa": pytest.approx(1.0)}


def test_a_shifted_box_matches_only_the_low_iou_thresholds() -> None:
    # 40x40 truth, same box moved 9.23 px right: IoU = 30.77 / 49.23 = 0.625.
    shift = 40 * (1 - 0.625) / (1 + 0.625)
    found = {
        1: PredScene(
            objects=[
                PredObject(
                    category="sofa",
                    confidence=0.9,
                    bbox=((10 + shift) / W, 0.1, (50 + shift) / W, 0.5),
                )
            ]
        )
    }
    metrics, _ = detection(_golden((10, 10, 50, 50)), found)
    assert metrics["bbox_map"] == pytest.approx(0.3)
    assert metrics["bbox_map50"] == pytest.approx(1.0)


def test_a_missed_object_halves_recall() -> None:
    metrics, per_class = detection(
        _golden((10, 10, 40, 40), (60, 60, 90, 90)), _found((10, 10, 40, 40))
    )
    for name in ("bbox_map", "bbox_map50", "mask_map", "mask_map50"):
        assert metrics[name] == pytest.approx(51 / 101)
    assert per_class["mask_ap"]["sofa"] == pytest.approx(51 / 101, abs=1e-6)


def test_no_prediction_scores_zero_and_a_wrong_class_scores_nothing() -> None:
    assert detection(_golden((10, 10, 50, 50)), {1: PredScene()})[0]["bbox_map"] == 0.0
    wrong = _found((10, 10, 50, 50))
    wrong[1].objects[0].category = "lamp"
    metrics, per_class = detection(_golden((10, 10, 50, 50)), wrong)
    assert metrics["bbox_map"] == 0.0
    assert "lamp" not in per_class["bbox_ap"]  # classes absent from the truth are left out


def test_macro_f1_over_the_classes_seen() -> None:
    overall, each = macro_f1([["a"], ["b"], ["b"]], [["a"], ["b"], ["a"]])
    # a: precision 1/2, recall 1 -> 2/3; b: precision 1, recall 1/2 -> 2/3
    assert overall == pytest.approx(2 / 3)
    assert each == {"a": pytest.approx(2 / 3), "b": pytest.approx(2 / 3)}
    multi, _ = macro_f1([["wood", "metal"]], [["wood"]])
    assert multi == pytest.approx(0.5)  # wood 1, metal 0


def test_objects_match_by_box_whatever_their_class() -> None:
    found = _found((10, 10, 50, 50), (60, 60, 90, 90))[1].objects
    assert match_objects([(0.6, 0.6, 0.9, 0.9), (0.0, 0.0, 0.05, 0.05)], found) == {0: 1}


def test_palette_distance_is_zero_for_the_same_colours_and_grows_with_difference() -> None:
    white, grey = (100.0, 0.0, 0.0), (50.0, 0.0, 0.0)
    assert palette_distance([(white, 1.0)], [(white, 0.5), (grey, 0.5)]) == pytest.approx(0.0)
    far = palette_distance([(white, 0.5), (grey, 0.5)], [(white, 1.0)])
    assert far is not None
    assert 15 < far < 40  # half the truth is a 50-L* step away
    assert palette_distance([], [(white, 1.0)]) is None


def test_caption_sanity() -> None:
    found = caption_metrics(
        ["a modern bedroom with a sofa", "a red kitchen"], ["bed bed bed sofa", ""]
    )
    assert found["caption_empty_share"] == 0.5
    assert found["caption_repetition_share"] == 0.5
    assert found["caption_words_mean"] == 2.0
    assert found["caption_truth_recall"] == pytest.approx((1 / 3 + 0) / 2)


def test_regressions_are_flagged_beyond_the_tolerance() -> None:
    deltas, worse = compare(
        {"bbox_map": 0.40, "style_f1": 0.695, "palette_de00": 9.0, "caption_words_mean": 3.0},
        {"bbox_map": 0.50, "style_f1": 0.70, "palette_de00": 7.5, "caption_words_mean": 9.0},
    )
    assert deltas["bbox_map"] == pytest.approx(-0.1)
    assert worse == ("bbox_map", "palette_de00")
    assert compare({"bbox_map": 0.1}, None) == ({}, ())
