"""The review app in a real browser against the real stack: what a reviewer does, end to end."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.stack import Stack, job_entries, real_photos, wait_until

pytestmark = pytest.mark.integration

MASK_PIXELS = """() => {
  const canvas = document.querySelector('[data-testid=mask-canvas]');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let covered = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) covered += 1;
  return covered;
}"""


MASK_OPACITY = """() => {
  const canvas = document.querySelector('[data-testid=mask-canvas]');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let i = 3; i < data.length; i += 4) sum += data[i];
  return sum;
}"""


def _object(client: httpx.Client, scene_id: str, object_id: str) -> dict[str, Any]:
    scene = client.get(f"/scenes/{scene_id}").json()
    return next(o for o in scene["objects"] if o["object_id"] == object_id)


def _queue_ids(client: httpx.Client, dataset_id: str) -> tuple[set[str], int]:
    ids: set[str] = set()
    cursor: str | None = None
    remaining = -1
    while True:
        params: dict[str, Any] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"/datasets/{dataset_id}/review-queue", params=params).json()
        remaining = page["remaining"] if remaining < 0 else remaining
        ids.update(i["object_id"] for i in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return ids, remaining


def test_upload_a_job_live_then_correct_and_approve_an_object(stack: Stack, page: Page) -> None:
    stack.wait_worker()
    page.goto(stack.app_link("/"))
    expect(page).to_have_url(re.compile(r"/app/$"))  # the token left the address bar
    page.fill("input[name=name]", "photos from a browser")
    page.click("button:has-text('Create')")
    expect(page).to_have_url(re.compile(r"/datasets/[^/]+/upload$"))
    dataset_id = page.url.split("/datasets/")[1].split("/")[0]

    # Three real photos, each PUT straight to storage with its own progress bar.
    page.set_input_files("input[name=photos]", [str(p) for p in real_photos()])
    expect(page.locator("[data-testid=uploads] li")).to_have_count(3)
    page.click("button:has-text('Upload')")
    expect(page.locator("[data-testid=uploads] li[data-state=registered]")).to_have_count(
        3, timeout=60_000
    )
    for bar in page.locator("[data-testid=uploads] [role=progressbar]").all():
        assert bar.get_attribute("aria-valuenow") == "100"
    page.click("button:has-text('Start job')")

    # The job, live over SSE: the page goes from live to ended with every scene counted.
    expect(page).to_have_url(re.compile(r"/jobs/"))
    job_id = page.url.rsplit("/", 1)[1]
    status = page.get_by_test_id("stream-status")
    expect(status).to_have_attribute("data-status", re.compile("connecting|live"))
    expect(status).to_have_attribute("data-status", "ended", timeout=300_000)
    expect(page.get_by_test_id("counts")).to_contain_text("3/3 scenes")
    entries = job_entries(stack, job_id)
    received = page.locator("[data-testid=eventlog] li").evaluate_all(
        "items => items.map(i => i.dataset.entryId)"
    )
    assert received == entries

    # A scene: masks drawn on the canvas, from the mask PNGs.
    page.click("text=See the scenes")
    tile = page.locator("[data-testid=scene-grid] li[data-scene]").first
    scene_id = tile.get_attribute("data-scene")
    assert scene_id
    tile.locator("a").click()
    expect(page.get_by_test_id("mask-status")).to_have_text(
        re.compile(r"masks (\d+)/\1$"), timeout=60_000
    )
    assert page.evaluate(MASK_PIXELS) > 0
    mask_canvas = page.get_by_test_id("mask-canvas")
    page.keyboard.press("m")  # all masks off
    expect(mask_canvas).to_have_css("visibility", "hidden")
    page.keyboard.press("m")
    expect(mask_canvas).to_have_css("visibility", "visible")

    # Correct one object with a number key, see it in GET /scenes/:id, undo it (an event too).
    row = page.locator("[data-testid=object-list] [data-object]").first
    object_id = row.get_attribute("data-object")
    assert object_id
    row.click()
    expect(page.get_by_test_id("object-details")).to_have_attribute("data-object", object_id)
    drawn = int(mask_canvas.get_attribute("data-masks-drawn") or 0)
    opacity = page.evaluate(MASK_OPACITY)
    page.keyboard.press("h")  # hide this object's mask (its pixels may lie under others')
    expect(mask_canvas).to_have_attribute("data-masks-drawn", str(drawn - 1))
    assert page.evaluate(MASK_OPACITY) <= opacity
    page.keyboard.press("h")
    expect(mask_canvas).to_have_attribute("data-masks-drawn", str(drawn))
    assert page.evaluate(MASK_OPACITY) == opacity  # repainted exactly as it was
    with stack.client() as client:
        before = _object(client, scene_id, object_id)
        codes = page.locator("[data-testid=hotbar] button").evaluate_all(
            "bs => bs.map(b => b.dataset.code)"
        )
        key, code = next((i + 1, c) for i, c in enumerate(codes) if c != before["category"])
        page.keyboard.press(str(key))
        after = wait_until(
            lambda: (o := _object(client, scene_id, object_id))["category"] == code and o,
            "the correction in GET /scenes/:id",
        )
        assert after["corrected_by"] == "browser"
        page.keyboard.press("Control+z")
        wait_until(
            lambda: _object(client, scene_id, object_id)["category"] == before["category"],
            "the undo in GET /scenes/:id",
        )

        # A box in two clicks.
        page.keyboard.press("b")
        expect(page.get_by_test_id("stage")).to_have_class(re.compile("mode-box"))
        stage = page.get_by_test_id("stage")
        size = stage.bounding_box()
        assert size
        # Positions within the element, found at click time (after any layout has settled).
        stage.click(position={"x": 0.6 * size["width"], "y": 0.7 * size["height"]})
        stage.click(position={"x": 0.2 * size["width"], "y": 0.25 * size["height"]})
        wait_until(
            lambda: (
                [round(v, 2) for v in _object(client, scene_id, object_id)["bbox"]]
                == [0.2, 0.25, 0.6, 0.7]
            ),
            "the redrawn box in GET /scenes/:id",
        )

        # Approve it: it leaves the review queue.
        queued, remaining = _queue_ids(client, dataset_id)
        assert object_id in queued
        page.keyboard.press("a")
        wait_until(lambda: object_id not in _queue_ids(client, dataset_id)[0], "left the queue")
        assert _queue_ids(client, dataset_id)[1] == remaining - 1

    page.goto(f"{stack.url}/app/datasets/{dataset_id}/review")
    expect(page.get_by_test_id("review-queue").locator("li[data-object]").first).to_be_visible()
    assert page.locator(f"[data-testid=review-queue] li[data-object='{object_id}']").count() == 0
