"""Each stage on generated images, with the tiny models: shapes, ranges, determinism."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from modomo.domain.taxonomies import COCO_TO_CATEGORY, FURNITURE, MATERIALS, SCENE_TYPES, STYLES
from modomo.gpu.models import Models
from modomo.gpu.stages import caption, clip, depth, objects
from modomo.gpu.stages.ids import object_id
from modomo.gpu.stages.palette import extract_palette
from tests.gpu.images import room_image

pytestmark = pytest.mark.gpu

IMAGES = [room_image(640, 480, seed=1), room_image(480, 640, seed=2)]
SCENES = ["0b7f4c36-7a0e-4f51-9a7e-2f0f3f7a1c11", "not-a-uuid"]


def test_scene_type_is_a_taxonomy_code_with_a_probability(models: Models) -> None:
    results = clip.classify_scenes(models.clip, IMAGES)
    assert len(results) == 2
    for top, alternatives in results:
        assert top.code in SCENE_TYPES
        assert len(alternatives) == 3
        scores = [top.score, *(a.score for a in alternatives)]
        assert scores == sorted(scores, reverse=True)
        assert all(0 < s <= 1 for s in scores)
    assert clip.classify_scenes(models.clip, IMAGES) == results  # deterministic


def test_styles_keep_the_top_one_and_those_over_the_threshold(models: Models) -> None:
    for threshold in (0.0, 1.0):
        for styles in clip.classify_styles(models.clip, IMAGES, threshold, top_k=3):
            assert 1 <= len(styles) <= 3
            assert all(s.code in STYLES for s in styles)
            assert len(styles) == (3 if threshold == 0.0 else 1)


def test_batched_and_single_calls_agree(models: Models) -> None:
    batched = clip.classify_scenes(models.clip, IMAGES)
    single = [clip.classify_scenes(models.clip, [image])[0] for image in IMAGES]
    for (a, _), (b, _) in zip(batched, single, strict=True):
        assert a.code == b.code
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_detections_are_furniture_with_fractional_boxes(models: Models) -> None:
    found = objects.detect(models.detector, models.runtime, IMAGES, SCENES, 0.25)
    assert [len(d) for d in found] == [6, 6]  # the tiny detector's max_det
    for scene_id, detections in zip(SCENES, found, strict=True):
        for i, det in enumerate(detections):
            assert det.category in FURNITURE
            assert COCO_TO_CATEGORY[det.label] == det.category
            x0, y0, x1, y1 = det.bbox
            assert 0 <= x0 < x1 <= 1
            assert 0 <= y0 < y1 <= 1
            assert 0.25 <= det.confidence <= 1
            assert det.object_id == object_id(scene_id, "detect", i)
    confs = [d.confidence for d in found[0]]
    assert confs == sorted(confs, reverse=True)
    assert objects.detect(models.detector, models.runtime, IMAGES, SCENES, 0.25) == found


def test_detect_leaves_the_process_thread_count_alone(models: Models) -> None:
    import torch

    objects.detect(models.detector, models.runtime, IMAGES[:1], SCENES[:1], 0.25)
    assert torch.get_num_threads() == models.runtime.threads


def test_labels_merge_with_detections_by_overlap(models: Models) -> None:
    detections = objects.detect(models.detector, models.runtime, IMAGES, SCENES, 0.25)
    labels = objects.label(models.grounder, models.runtime, IMAGES, SCENES, detections, 0.3)
    assert len(labels) == 2
    for scene_id, dets, labs in zip(SCENES, detections, labels, strict=True):
        assert labs, "the tiny GroundingDINO scores boxes over the threshold"
        assert len({lab.object_id for lab in labs}) == len(labs)
        detected = {d.object_id: d for d in dets}
        new_ids = [object_id(scene_id, "label", i) for i in range(len(labs))]
        for lab in labs:
            assert lab.category in FURNITURE
            assert FURNITURE.get(lab.category).prompt == lab.phrase
            assert 0.3 <= lab.confidence <= 1
            if lab.object_id in detected:
                from modomo.gpu.stages.boxes import iou

                assert iou(detected[lab.object_id].bbox, lab.bbox) >= objects.MERGE_IOU
            else:
                assert lab.object_id in new_ids
    # Without detections every label is a new object, numbered in score order.
    alone = objects.label(models.grounder, models.runtime, IMAGES[:1], SCENES[:1], [()], 0.3)[0]
    assert [lab.object_id for lab in alone] == [
        object_id(SCENES[0], "label", i) for i in range(len(alone))
    ]


def test_segment_gives_one_mask_per_box_at_image_size(models: Models) -> None:
    boxes = [
        objects.SceneObject("a", (0.1, 0.5, 0.4, 0.9), 0.9),
        objects.SceneObject("b", (0.5, 0.1, 0.8, 0.4), 0.8),
    ]
    masks = objects.segment(models.segmenter, models.runtime, IMAGES, [boxes, boxes[:1]])
    assert [len(m) for m in masks] == [2, 1]
    assert masks[0][0].shape == (480, 640)
    assert masks[1][0].shape == (640, 480)
    assert masks[0][0].dtype == bool
    png = objects.mask_png(masks[0][0])
    back = np.asarray(Image.open(io.BytesIO(png)))
    assert back.shape == (480, 640)
    assert set(np.unique(back)) <= {0, 255}
    assert objects.segment(models.segmenter, models.runtime, IMAGES[:1], [[]]) == [[]]


def test_depth_is_a_16_bit_map_spanning_the_scene_range(models: Models) -> None:
    maps = depth.estimate_depth(models.depth, models.runtime, IMAGES)
    assert [m.shape for m in maps] == [(480, 640), (640, 480)]
    assert all(m.dtype == np.float32 and np.isfinite(m).all() for m in maps)
    png, near, far = depth.depth_png(maps[0])
    assert near >= far
    grey = np.asarray(Image.open(io.BytesIO(png)))
    assert grey.dtype == np.uint16
    assert grey.shape == (480, 640)
    if near > far:
        assert grey.min() == 0
        assert grey.max() == 65535
    again = depth.estimate_depth(models.depth, models.runtime, IMAGES[:1])[0]
    np.testing.assert_allclose(again, maps[0], rtol=1e-5, atol=1e-9)


def test_depth_png_maps_a_known_ramp() -> None:
    ramp = np.linspace(2.0, 10.0, 100, dtype=np.float32).reshape(10, 10)
    png, near, far = depth.depth_png(ramp)
    assert (near, far) == (10.0, 2.0)
    grey = np.asarray(Image.open(io.BytesIO(png))).astype(np.float64)
    np.testing.assert_allclose(far + grey / 65535 * (near - far), ramp, atol=1e-3)


def test_captions_are_short_deterministic_text(models: Models) -> None:
    texts = caption.caption(models.captioner, models.runtime, IMAGES)
    assert len(texts) == 2
    for text in texts:
        assert text
        assert text == text.strip()
        assert "[" not in text
        assert len(text.split()) <= caption.MAX_NEW_TOKENS
    assert caption.caption(models.captioner, models.runtime, IMAGES) == texts


def test_materials_score_every_crop_in_one_call(models: Models) -> None:
    crops = [objects.crop(IMAGES[0], (0.1, 0.1, 0.5, 0.5)), objects.crop(IMAGES[0], (0, 0, 1, 1))]
    scored = clip.classify_materials(models.clip, crops, 0.0, top_k=2)
    assert len(scored) == 2
    assert all(len(s) == 2 and all(m.code in MATERIALS for m in s) for s in scored)
    assert clip.classify_materials(models.clip, [], 0.1) == []


def test_palette_recovers_known_colours_and_their_shares() -> None:
    colours = {
        (200, 30, 30): 0.40,
        (30, 160, 60): 0.25,
        (40, 60, 200): 0.15,
        (240, 230, 200): 0.12,
        (20, 20, 20): 0.08,
    }
    rows = []
    for rgb, share in colours.items():
        rows.extend([rgb] * int(share * 500))
    pixels = np.array(rows, dtype=np.uint8).reshape(500, 1, 3).repeat(400, axis=1)
    palette = extract_palette(Image.fromarray(pixels))
    assert len(palette) == 5
    assert sum(c.share for c in palette) == pytest.approx(1.0, abs=1e-3)
    for colour, (rgb, share) in zip(palette, colours.items(), strict=True):  # largest first
        assert colour.hex == "#{:02x}{:02x}{:02x}".format(*rgb)
        assert colour.share == pytest.approx(share, abs=0.01)
        assert 0 <= colour.lab[0] <= 100


def test_palette_of_a_photo_has_five_to_eight_colours() -> None:
    palette = extract_palette(room_image(800, 600, seed=3))
    assert 5 <= len(palette) <= 8
    shares = [c.share for c in palette]
    assert shares == sorted(shares, reverse=True)
    assert sum(shares) == pytest.approx(1.0, abs=1e-3)
    assert extract_palette(room_image(800, 600, seed=3)) == palette


def test_object_ids_are_stable_per_scene_and_index() -> None:
    assert object_id("s", "detect", 0) == object_id("s", "detect", 0)
    assert object_id("s", "detect", 0) != object_id("s", "detect", 1)
    assert object_id("s", "detect", 0) != object_id("s", "label", 0)
    assert object_id("s", "detect", 0) != object_id("t", "detect", 0)
