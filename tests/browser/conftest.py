"""Browser tests: the built review app in headless Chromium (Debian's, driven by Playwright
through its executable path; no browser download) against one real stack for the whole
folder: API, projectors and a tiny-profile GPU worker as processes, SeaweedFS, the
machine's Redis and PostgreSQL. The app must be built (``scripts/web.sh ensure``, which
``just test`` runs first)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from modomo.demo.services import free_port
from tests.browser.stack import CHROMIUM_FLAGS, ROOT, Stack, chromium, running_stack, stack_settings
from tests.integration.s3 import start_seaweedfs

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")


@pytest.fixture(scope="package")
def s3() -> Iterator[str]:
    yield from start_seaweedfs()


@pytest.fixture(scope="package")
def app_origin_port() -> int:
    """The port of a second origin serving the built app, which CORS allows."""
    return free_port()


@pytest.fixture(scope="package")
def stack(s3: str, app_origin_port: int) -> Iterator[Stack]:
    if not (ROOT / "web" / "dist" / "index.html").is_file():
        raise RuntimeError("the review app is not built: run `bash scripts/web.sh ensure`")
    with tempfile.TemporaryDirectory(prefix="modomo-browser-") as tmp:
        settings = stack_settings(
            s3, Path(tmp), cors_origins=(f"http://127.0.0.1:{app_origin_port}",)
        )
        with running_stack(settings, Path(tmp) / "state") as running:
            yield running


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], f"the page threw: {errors}"
