"""The review app in headless Chromium: how fast the scene page answers with 1,000 objects
and their masks, how soon a 30-object scene is on screen, and how big the bundle is.

    python bench/app.py [--objects 1000] [--repeat 8]

Runs the real stack (API serving the built app, projectors, SeaweedFS; no GPU worker: the
scenes are folded from stage events this script appends, with real mask PNGs in the
bucket). An interaction's latency is measured in the page, from the input event's own
timestamp to the first task after the next frame (so it includes React's update, the
canvases' redraw and the paint); Chromium's Event Timing entries are reported beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import io
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from modomo.domain.events import (  # noqa: E402
    Colour,
    DatasetCreated,
    DepthEstimated,
    Detection,
    Label,
    Mask,
    MasksSegmented,
    MaterialsClassified,
    ModelRef,
    ObjectMaterials,
    ObjectsDetected,
    ObjectsLabelled,
    PaletteExtracted,
    RegisteredScene,
    SceneClassified,
    SceneCompleted,
    ScenesRegistered,
    Scored,
    StylesClassified,
)
from modomo.domain.taxonomies import FURNITURE, MATERIALS  # noqa: E402
from modomo.storage import Storage, depth_key, mask_key, scene_key, thumb_key  # noqa: E402
from modomo.streams.connection import connect  # noqa: E402
from modomo.streams.keys import Keys  # noqa: E402
from modomo.streams.log import EventLog  # noqa: E402
from tests.browser.stack import (  # noqa: E402
    CHROMIUM_FLAGS,
    Stack,
    chromium,
    real_photos,
    running_stack,
    stack_settings,
    wait_until,
)
from tests.integration.s3 import start_seaweedfs  # noqa: E402

METER = """
window.__latency = [];
for (const type of ['keydown', 'pointerdown', 'click']) {
  addEventListener(type, (event) => {
    const start = event.timeStamp;
    const label = window.__label || type;
    requestAnimationFrame(() => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () =>
        window.__latency.push({ label, ms: performance.now() - start });
      channel.port2.postMessage(null);
    });
  }, { capture: true });
}
window.__eventTiming = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__eventTiming.push({ name: e.name, ms: e.duration });
}).observe({ type: 'event', durationThreshold: 16, buffered: true });
"""


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def _scene(stack: Stack, dataset_id: str, scene_id: str, objects: int, seed: int) -> None:
    """A scene with ``objects`` objects, each with a real mask PNG in the bucket."""
    rng = random.Random(seed)
    photo = Image.open(real_photos()[0]).convert("RGB")
    width, height = photo.size
    jpeg = io.BytesIO()
    photo.save(jpeg, format="JPEG", quality=88)
    depth = Image.linear_gradient("L").resize((width, height))
    model = ModelRef(id="bench", profile="synthetic")
    common = {"job_id": f"bench-{scene_id}", "scene_id": scene_id}
    detections, masks, labels, materials = [], [], [], []
    codes, materials_codes = FURNITURE.codes(), MATERIALS.codes()
    async with Storage.open(stack.settings) as storage:
        await storage.put(scene_key(scene_id), jpeg.getvalue(), "image/jpeg")
        await storage.put(depth_key(scene_id), _png(depth), "image/png")
        semaphore = asyncio.Semaphore(16)

        async def put(key: str, data: bytes, kind: str) -> None:
            async with semaphore:
                await storage.put(key, data, kind)

        uploads = []
        for i in range(objects):
            object_id = f"{scene_id}-o{i:04d}"
            w, h = rng.uniform(0.03, 0.25), rng.uniform(0.03, 0.25)
            x0, y0 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
            box = (x0, y0, x0 + w, y0 + h)
            category = rng.choice(codes)
            detections.append(
                Detection(
                    object_id=object_id,
                    category=category,
                    confidence=round(rng.uniform(0.2, 0.99), 3),
                    bbox=box,
                )
            )
            if rng.random() < 0.3:
                labels.append(
                    Label(object_id=object_id, category=rng.choice(codes), confidence=0.5, bbox=box)
                )
            mask = Image.new("L", (width, height), 0)
            ImageDraw.Draw(mask).ellipse(
                (box[0] * width, box[1] * height, box[2] * width, box[3] * height), fill=255
            )
            uploads.append(put(mask_key(scene_id, object_id), _png(mask), "image/png"))
            masks.append(
                Mask(
                    object_id=object_id,
                    mask_key=mask_key(scene_id, object_id),
                    thumb_key=thumb_key(scene_id, object_id),
                    area=w * h,
                )
            )
            picks = rng.sample(materials_codes, 2)
            materials.append(
                ObjectMaterials(
                    object_id=object_id,
                    materials=(
                        Scored(code=picks[0], score=rng.uniform(0.4, 0.8)),
                        Scored(code=picks[1], score=rng.uniform(0.1, 0.4)),
                    ),
                )
            )
        await asyncio.gather(*uploads)
    events = [
        ScenesRegistered(
            dataset_id=dataset_id,
            scenes=(
                RegisteredScene(
                    scene_id=scene_id,
                    r2_key_original=scene_key(scene_id),
                    filename=f"{objects}-objects.jpg",
                ),
            ),
        ),
        SceneClassified(**common, model=model, scene_type="living_room", confidence=0.8),
        StylesClassified(**common, model=model, styles=(Scored(code="modern", score=0.7),)),
        ObjectsDetected(
            **common, model=model, objects=tuple(detections), width=width, height=height
        ),
        ObjectsLabelled(**common, model=model, labels=tuple(labels)),
        MasksSegmented(**common, model=model, masks=tuple(masks)),
        MaterialsClassified(**common, model=model, objects=tuple(materials)),
        DepthEstimated(**common, model=model, depth_key=depth_key(scene_id), near=0.5, far=6.0),
        PaletteExtracted(
            **common,
            model=model,
            colours=(
                Colour(hex="#c8b89a", lab=(75.0, 2.0, 14.0), share=0.6),
                Colour(hex="#3b3f46", lab=(26.0, 0.0, -4.0), share=0.4),
            ),
        ),
        SceneCompleted(**common, objects=objects, avg_conf=0.6),
    ]
    redis = connect(stack.settings)
    try:
        await EventLog(redis, Keys(stack.settings.redis_prefix)).append(events)
    finally:
        await redis.aclose()


async def _data(stack: Stack, objects: int) -> tuple[str, str]:
    dataset = DatasetCreated(dataset_id="bench", name="bench")
    redis = connect(stack.settings)
    try:
        await EventLog(redis, Keys(stack.settings.redis_prefix)).append([dataset])
    finally:
        await redis.aclose()
    await _scene(stack, "bench", "big", objects, 1)
    await _scene(stack, "bench", "small", 30, 2)
    return "big", "small"


def _open(page: Page, stack: Stack, scene_id: str, objects: int) -> None:
    page.goto(stack.app_link(f"/scenes/{scene_id}"))
    page.get_by_test_id("mask-status").filter(has_text=f"masks {objects}/{objects}").wait_for(
        timeout=300_000
    )


def _act(page: Page, label: str, action: Any) -> None:
    """Run ``action``; its latency is that of the slowest input event it made (a click is a
    pointerdown and a click, Control+z two keydowns)."""
    count = page.evaluate("() => (window.__count = (window.__count || 0) + 1)")
    page.evaluate("label => { window.__label = label; }", f"{label}#{count}")
    action()
    page.wait_for_timeout(150)  # let the frame after the input land


def _interactions(
    page: Page, stack: Stack, scene_id: str, objects: int, repeat: int
) -> dict[str, list[float]]:
    _open(page, stack, scene_id, objects)
    stage = page.get_by_test_id("stage").bounding_box()
    rows = page.locator("[data-testid=object-list] [data-object]")
    assert stage
    rng = random.Random(3)
    for _ in range(repeat):
        _act(page, "select in list", lambda: rows.nth(rng.randrange(5)).click())
        _act(
            page,
            "select on canvas",
            lambda: page.mouse.click(
                stage["x"] + rng.uniform(0.1, 0.9) * stage["width"],
                stage["y"] + rng.uniform(0.1, 0.9) * stage["height"],
            ),
        )
        _act(page, "select in list", lambda: rows.nth(rng.randrange(5)).click())
        _act(page, "category key", lambda: page.keyboard.press(str(rng.randrange(1, 10))))
        _act(page, "undo", lambda: page.keyboard.press("Control+z"))
        _act(page, "next object", lambda: page.keyboard.press("j"))
        _act(page, "hide mask", lambda: page.keyboard.press("h"))
        _act(page, "all masks", lambda: page.keyboard.press("m"))
        _act(page, "all masks", lambda: page.keyboard.press("m"))
        _act(page, "sort", lambda: page.locator("[data-sort=confidence]").click())
        _act(page, "box mode", lambda: page.keyboard.press("b"))
        _act(
            page,
            "box corner",
            lambda: page.mouse.click(
                stage["x"] + 0.3 * stage["width"], stage["y"] + 0.3 * stage["height"]
            ),
        )
        _act(
            page,
            "box corner",
            lambda: page.mouse.click(
                stage["x"] + 0.5 * stage["width"], stage["y"] + 0.6 * stage["height"]
            ),
        )
        _act(page, "select all", lambda: page.keyboard.press("Control+a"))
        _act(page, "clear selection", lambda: page.keyboard.press("Escape"))
    wait_until(lambda: page.evaluate("window.__latency.length") > 0, "measurements")
    slowest: dict[str, float] = {}
    for item in page.evaluate("window.__latency"):
        slowest[item["label"]] = max(slowest.get(item["label"], 0.0), item["ms"])
    found: dict[str, list[float]] = {}
    for instance, ms in slowest.items():
        found.setdefault(instance.split("#")[0], []).append(ms)
    timing = page.evaluate("window.__eventTiming")
    found["(Event Timing entries ≥ 16 ms)"] = [e["ms"] for e in timing]
    return found


def _first_render(browser: Any, stack: Stack, scene_id: str, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        "photo drawn": [],
        "masks drawn": [],
        "first contentful paint": [],
    }
    for _ in range(runs):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        _open(page, stack, scene_id, 30)
        marks = page.evaluate(
            """() => ({
              photo: performance.getEntriesByName('scene-photo-drawn')[0]?.startTime,
              masks: performance.getEntriesByName('scene-masks-drawn')[0]?.startTime,
              fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime,
            })"""
        )
        out["photo drawn"].append(marks["photo"])
        out["masks drawn"].append(marks["masks"])
        out["first contentful paint"].append(marks["fcp"])
        context.close()
    return out


def _bundle() -> list[tuple[str, int, int]]:
    assets = sorted((ROOT / "web" / "dist" / "assets").iterdir())
    return [(p.name, p.stat().st_size, len(gzip.compress(p.read_bytes(), 9))) for p in assets]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=8)
    args = parser.parse_args()
    if not (ROOT / "web" / "dist" / "index.html").is_file():
        print("build the app first: bash scripts/web.sh ensure", file=sys.stderr)
        return 1
    seaweed = start_seaweedfs()
    endpoint = next(seaweed)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = stack_settings(endpoint, Path(tmp))
            with running_stack(settings, Path(tmp) / "state", worker=False) as stack:
                big, small = asyncio.run(_data(stack, args.objects))
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=chromium(), args=CHROMIUM_FLAGS
                    )
                    context = browser.new_context(viewport={"width": 1400, "height": 900})
                    context.add_init_script(METER)
                    page = context.new_page()
                    latencies = _interactions(page, stack, big, args.objects, args.repeat)
                    context.close()
                    render = _first_render(browser, stack, small, runs=5)
                    browser.close()
    finally:
        for _ in seaweed:
            pass
    print(f"\nScene page with {args.objects} objects and masks (headless Chromium, this machine)\n")
    print("| interaction | n | p50 ms | max ms |\n| --- | --- | --- | --- |")
    for label, values in latencies.items():
        if values:
            print(
                f"| {label} | {len(values)} | {statistics.median(values):.0f} | {max(values):.0f} |"
            )
        else:
            print(f"| {label} | 0 | - | - |")
    print("\nScene page with 30 objects, cold load (5 runs, ms after navigation start)\n")
    print("| milestone | median | max |\n| --- | --- | --- |")
    for label, values in render.items():
        clean = [v for v in values if v is not None]
        if clean:
            print(f"| {label} | {statistics.median(clean):.0f} | {max(clean):.0f} |")
    print("\nBundle (web/dist/assets)\n\n| file | bytes | gzip -9 |\n| --- | --- | --- |")
    for name, raw, packed in _bundle():
        print(f"| {name} | {raw:,} | {packed:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
