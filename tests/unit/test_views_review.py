"""The fold keeps what the review queue ranks by: both detectors' categories, the material
margin and the object's dataset (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from modomo.domain.events import (
    Detection,
    Label,
    MaterialsClassified,
    ModelRef,
    ObjectCorrected,
    ObjectMaterials,
    ObjectsDetected,
    ObjectsLabelled,
    RegisteredScene,
    Scored,
)
from modomo.domain.views import SceneView, apply_scene_view, register

CATEGORIES = st.sampled_from(["sofa", "armchair", "chair", "bed", "lamp"])
SCORES = st.lists(st.floats(0, 1, allow_nan=False), max_size=5)


def _scene() -> SceneView:
    return register(
        None,
        "d1",
        RegisteredScene(scene_id="s", r2_key_original="k"),
        datetime(2026, 1, 1, tzinfo=UTC),
    )


@given(
    detected=st.lists(CATEGORIES, min_size=1, max_size=6),
    labelled=st.lists(st.one_of(st.none(), CATEGORIES), min_size=6, max_size=6),
    scores=st.lists(SCORES, min_size=6, max_size=6),
    corrected=st.integers(0, 5),
)
def test_detectors_categories_and_material_margins(
    detected: list[str], labelled: list[str | None], scores: list[list[float]], corrected: int
) -> None:
    view = _scene()
    model = ModelRef(id="m")
    ids = [f"o{i}" for i in range(len(detected))]
    apply_scene_view(
        view,
        ObjectsDetected(
            job_id="j",
            scene_id="s",
            model=model,
            objects=tuple(
                Detection(object_id=i, category=c, confidence=0.5, bbox=(0, 0, 1, 1))
                for i, c in zip(ids, detected, strict=True)
            ),
        ),
    )
    apply_scene_view(
        view,
        ObjectsLabelled(
            job_id="j",
            scene_id="s",
            model=model,
            labels=tuple(
                Label(object_id=i, category=c, confidence=0.5, bbox=(0, 0, 1, 1))
                for i, c in zip(ids, labelled, strict=False)
                if c is not None
            ),
        ),
    )
    codes = ["oak", "pine", "linen", "wool", "brass"]
    apply_scene_view(
        view,
        MaterialsClassified(
            job_id="j",
            scene_id="s",
            model=model,
            objects=tuple(
                ObjectMaterials(
                    object_id=i,
                    materials=tuple(
                        Scored(code=c, score=s) for c, s in zip(codes, ss, strict=False)
                    ),
                )
                for i, ss in zip(ids, scores, strict=False)
            ),
        ),
    )
    target = ids[corrected % len(ids)]
    apply_scene_view(
        view, ObjectCorrected(object_id=target, scene_id="s", materials=("oak", "wool"))
    )
    for i, category, label, ss in zip(ids, detected, labelled, scores, strict=False):
        obj = view.objects[i]
        assert obj.dataset_id == "d1"
        assert obj.detect_category == category
        assert obj.label_category == label
        assert obj.category_code == (label or category)
        ranked = sorted(ss, reverse=True)
        if i == target or not ranked:
            assert obj.material_margin is None
        else:
            assert obj.material_margin == ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0)
