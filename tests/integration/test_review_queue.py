"""GET /datasets/:id/review-queue over real HTTP: the active-learning order, keyset paging,
and reviewed objects leaving the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from modomo.domain.events import (
    DatasetCreated,
    Detection,
    Label,
    MaterialsClassified,
    ModelRef,
    ObjectMaterials,
    ObjectsDetected,
    ObjectsLabelled,
    RegisteredScene,
    ScenesRegistered,
    Scored,
)
from modomo.settings import Settings
from tests.integration.api_support import Api, running_api
from tests.integration.projection_support import caught_up, publish
from tests.integration.support import wait_for

pytestmark = pytest.mark.integration

YOLO = ModelRef(id="yolo", profile="test")
DINO = ModelRef(id="dino", profile="test")
CLIP = ModelRef(id="clip", profile="test")


@pytest.fixture
async def api(db_settings: Settings, s3_endpoint: str) -> AsyncIterator[Api]:
    async with running_api(db_settings, s3_endpoint) as running_:
        yield running_


def _detection(object_id: str, category: str, confidence: float) -> Detection:
    return Detection(
        object_id=object_id, category=category, confidence=confidence, bbox=(0.1, 0.1, 0.4, 0.4)
    )


async def _dataset(redis: Redis, api: Api) -> str:
    """Five objects whose order exercises every key of the queue, in two scenes."""
    common = {"job_id": "j"}
    events = [
        DatasetCreated(dataset_id="d", name="queue"),
        DatasetCreated(dataset_id="other", name="other"),
        ScenesRegistered(
            dataset_id="d",
            scenes=(
                RegisteredScene(scene_id="s1", r2_key_original="scenes/s1.jpg"),
                RegisteredScene(scene_id="s2", r2_key_original="scenes/s2.jpg"),
            ),
        ),
        ScenesRegistered(
            dataset_id="other",
            scenes=(RegisteredScene(scene_id="s3", r2_key_original="scenes/s3.jpg"),),
        ),
        ObjectsDetected(
            **common,
            scene_id="s1",
            model=YOLO,
            objects=(
                _detection("calm", "chair", 0.501),  # bin 50, agree, margin 0.30
                _detection("torn", "sofa", 0.509),  # bin 50, YOLO sofa vs DINO armchair
                _detection("close", "coffee_table", 0.505),  # bin 50, agree, margin 0.05
                _detection("unsure", "lamp", 0.2),  # bin 20: first of all
            ),
        ),
        ObjectsDetected(
            **common,
            scene_id="s2",
            model=YOLO,
            objects=(_detection("sure", "bed", 0.97),),  # no materials: last
        ),
        ObjectsDetected(
            **common, scene_id="s3", model=YOLO, objects=(_detection("elsewhere", "bed", 0.1),)
        ),
        ObjectsLabelled(
            **common,
            scene_id="s1",
            model=DINO,
            labels=(
                Label(object_id="torn", category="armchair", confidence=0.6, bbox=(0, 0, 1, 1)),
                Label(object_id="calm", category="chair", confidence=0.6, bbox=(0, 0, 1, 1)),
            ),
        ),
        MaterialsClassified(
            **common,
            scene_id="s1",
            model=CLIP,
            objects=(
                ObjectMaterials(
                    object_id="calm",
                    materials=(Scored(code="oak", score=0.6), Scored(code="pine", score=0.3)),
                ),
                ObjectMaterials(
                    object_id="torn",
                    materials=(Scored(code="linen", score=0.9), Scored(code="velvet", score=0.1)),
                ),
                ObjectMaterials(
                    object_id="close",
                    materials=(Scored(code="oak", score=0.5), Scored(code="walnut", score=0.45)),
                ),
                ObjectMaterials(object_id="unsure", materials=(Scored(code="brass", score=0.7),)),
            ),
        ),
    ]
    last = await publish(redis, api.settings, events)
    await wait_for(lambda: caught_up(api.settings, ["scenes", "datasets"], last), within=30)
    return "d"


async def _all(api: Api, dataset_id: str, limit: int) -> tuple[list[dict[str, Any]], int, int]:
    items: list[dict[str, Any]] = []
    pages = 0
    cursor = None
    async with api.client(role="viewer") as client:
        while True:
            params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            response = await client.get(f"/datasets/{dataset_id}/review-queue", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            pages += 1
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items, page["remaining"], pages


async def test_the_queue_ranks_pages_and_lets_reviewed_objects_go(redis: Redis, api: Api) -> None:
    dataset_id = await _dataset(redis, api)
    items, remaining, pages = await _all(api, dataset_id, limit=2)
    assert [i["object_id"] for i in items] == ["unsure", "torn", "close", "calm", "sure"]
    assert (remaining, pages) == (5, 3)
    torn = items[1]
    assert (torn["detect_category"], torn["label_category"], torn["category"]) == (
        "sofa",
        "armchair",
        "armchair",
    )
    assert torn["disagreement"] is True
    assert items[0]["disagreement"] is False
    assert items[2]["material_margin"] == pytest.approx(0.05, abs=1e-6)
    assert items[0]["material_margin"] == pytest.approx(0.7, abs=1e-6)  # one material: its score
    assert items[4]["material_margin"] is None
    assert [m["code"] for m in items[2]["materials"]] == ["oak", "walnut"]

    async with api.client() as client:
        for object_id, verdict in (("torn", "approve"), ("sure", "reject")):
            scene = "s1" if object_id == "torn" else "s2"
            review = await client.post(
                "/reviews", json={"scene_id": scene, "object_id": object_id, "verdict": verdict}
            )
            assert review.status_code == 201, review.text
        # A scene-level review names no object: nothing leaves for it.
        await client.post("/reviews", json={"scene_id": "s1", "verdict": "fix"})
        assert (await client.get("/datasets/nope/review-queue")).status_code == 404
    items, remaining, _ = await _all(api, dataset_id, limit=50)
    assert [i["object_id"] for i in items] == ["unsure", "close", "calm"]
    assert remaining == 3


async def test_a_correction_keeps_both_detectors_verdicts(redis: Redis, api: Api) -> None:
    dataset_id = await _dataset(redis, api)
    async with api.client() as client:
        corrected = await client.patch(
            "/objects/torn", json={"category": "sofa", "materials": ["linen", "wool"]}
        )
        assert corrected.status_code == 200, corrected.text
        body = corrected.json()
        assert (body["category"], body["detect_category"], body["label_category"]) == (
            "sofa",
            "sofa",
            "armchair",
        )
        assert body["material_margin"] is None  # a reviewer's materials are not a model's call
    items, _, _ = await _all(api, dataset_id, limit=50)
    torn = next(i for i in items if i["object_id"] == "torn")
    assert torn["corrected"] is True
    assert torn["disagreement"] is True  # corrected but not reviewed: still queued
