"""Screenshots of every page of the review app, for the README: ``just screenshots``.

Runs the real stack (API with the built app, projectors, a tiny-profile GPU worker,
SeaweedFS) on this machine's Redis and PostgreSQL in a scratch prefix, goes through the app
as a reviewer would (sign in, create a dataset, upload photos, run a job, open a scene,
the review queue, the stats) in headless Chromium, and writes docs/screenshots/*.png.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from modomo.synthetic.rooms import room  # noqa: E402
from tests.browser.stack import (  # noqa: E402
    CHROMIUM_FLAGS,
    Stack,
    chromium,
    real_photos,
    running_stack,
    stack_settings,
)
from tests.integration.s3 import start_seaweedfs  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def shoot(page: Page, name: str) -> None:
    page.wait_for_timeout(400)  # let the last frame settle
    page.screenshot(path=str(OUT / f"{name}.png"))
    print(f"docs/screenshots/{name}.png", file=sys.stderr)


def tour(page: Page, stack: Stack, photos: list[Path]) -> None:
    page.goto(f"{stack.url}/app/signin")
    page.fill("textarea[name=credential]", "eyJhbGciOiJIUzI1NiJ9.…")
    shoot(page, "signin")

    page.goto(stack.app_link("/"))
    page.fill("input[name=name]", "Living rooms, batch 1")
    page.fill("input[name=description]", "three real photos and five generated rooms")
    page.click("button:has-text('Create')")
    page.wait_for_url("**/upload")
    dataset_id = page.url.split("/datasets/")[1].split("/")[0]
    page.set_input_files("input[name=photos]", [str(p) for p in photos])
    page.click("button:has-text('Upload')")
    expect(page.locator("[data-testid=uploads] li[data-state=registered]")).to_have_count(
        len(photos), timeout=120_000
    )
    shoot(page, "upload")

    page.click("button:has-text('Start job')")
    page.wait_for_url("**/jobs/*")
    expect(page.get_by_test_id("stream-status")).to_have_attribute(
        "data-status", "ended", timeout=600_000
    )
    shoot(page, "job")

    page.goto(f"{stack.url}/app/")
    shoot(page, "datasets")

    page.goto(f"{stack.url}/app/datasets/{dataset_id}/scenes")
    expect(page.locator("[data-testid=scene-grid] img")).to_have_count(len(photos))
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=scene-grid] img')]"
        ".every(i => i.complete)"
    )
    shoot(page, "scenes")

    page.locator("[data-testid=scene-grid] li[data-scene] a").first.click()
    page.get_by_test_id("mask-status").filter(has_text="masks").wait_for()
    page.wait_for_function(
        "() => /masks (\\d+)\\/\\1$/.test(document.querySelector('[data-testid=mask-status]')"
        ".textContent)"
    )
    page.locator("[data-testid=object-list] [data-object]").nth(1).click()
    shoot(page, "scene")

    page.goto(f"{stack.url}/app/datasets/{dataset_id}/review")
    page.locator("[data-testid=review-queue] li[data-object]").first.wait_for()
    shoot(page, "review-queue")

    page.goto(f"{stack.url}/app/stats")
    page.get_by_test_id("overview").wait_for()
    shoot(page, "stats")


def main() -> int:
    if not (ROOT / "web" / "dist" / "index.html").is_file():
        print("build the app first: bash scripts/web.sh ensure", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    seaweed = start_seaweedfs()
    endpoint = next(seaweed)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            photos = list(real_photos())
            for seed in range(5):
                generated = folder / f"room-{seed}.jpg"
                generated.write_bytes(room(seed))
                photos.append(generated)
            settings = stack_settings(endpoint, folder)
            with running_stack(settings, folder / "state") as stack:
                stack.wait_worker()
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=chromium(), args=CHROMIUM_FLAGS
                    )
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    page.set_default_timeout(60_000)
                    tour(page, stack, photos)
                    browser.close()
    finally:
        for _ in seaweed:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
