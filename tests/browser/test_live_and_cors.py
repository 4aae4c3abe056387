"""The job page's event stream survives an API restart with no gap and no repeat; the app
works from another origin that CORS allows, and not from one it does not."""

from __future__ import annotations

import functools
import http.server
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.stack import ROOT, Stack, job_entries, start_job, upload_scenes, wait_until

pytestmark = pytest.mark.integration

EVENT_IDS = "items => items.map(i => i.dataset.entryId)"


def _received(page: Page) -> list[str]:
    ids: list[str] = page.locator("[data-testid=eventlog] li").evaluate_all(EVENT_IDS)
    return ids


def test_the_stream_resumes_after_an_api_restart_with_every_event_once(
    stack: Stack, page: Page
) -> None:
    stack.wait_worker()
    dataset_id, _ = upload_scenes(stack, 8, "restart")
    job_id = start_job(stack, dataset_id)
    page.goto(stack.app_link(f"/jobs/{job_id}"))
    status = page.get_by_test_id("stream-status")
    expect(status).to_have_attribute("data-status", "live")
    wait_until(lambda: len(_received(page)) >= 2, "the first events in the browser")

    stack.kill_api()  # mid-job: the worker goes on appending while the API is down
    before_kill = len(_received(page))
    expect(status).to_have_attribute("data-status", "reconnecting")
    stack.start("api", ["api"])
    stack.wait_api()

    expect(status).to_have_attribute("data-status", "ended", timeout=300_000)
    entries = job_entries(stack, job_id)
    received = _received(page)
    assert before_kill < len(entries)  # the restart happened with events still to come
    assert received == entries  # every entry once, in order: no gap, no repeat
    assert "reconnect" in (status.text_content() or "")

    # The tickets the browser used rode in URLs; none reached the API's access log.
    log = stack.api_log.read_text()
    assert re.search(r'"route": ?"/jobs/\{job_id\}/events"', log), log[-2000:]
    assert "ticket=" not in log
    assert "eyJ" not in log  # no JWT of any kind


class _StaticApp(http.server.SimpleHTTPRequestHandler):
    """The built app as any static host would serve it: index.html for the app's routes."""

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if self.path.startswith("/app/") and not path.exists():
            self.path = "/app/index.html"
        return super().send_head()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def app_elsewhere(app_origin_port: int) -> Iterator[str]:
    """The built app served by a plain static server on another origin."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "app").symlink_to(ROOT / "web" / "dist")
        handler = functools.partial(_StaticApp, directory=tmp)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", app_origin_port), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{app_origin_port}"
        finally:
            server.shutdown()
            server.server_close()


def test_the_app_on_an_allowed_origin_reads_the_api_and_follows_a_job(
    stack: Stack, page: Page, app_elsewhere: str
) -> None:
    stack.wait_worker()
    dataset_id, _ = upload_scenes(stack, 1, "cors")
    job_id = start_job(stack, dataset_id, stages={"caption": False, "depth": False})
    page.goto(f"{app_elsewhere}/app/")
    expect(page).to_have_url(re.compile(r"/app/signin$"))
    page.fill("textarea[name=credential]", stack.token())
    page.click("summary:has-text('API address')")
    page.fill("input[name=api]", stack.url)
    page.click("button:has-text('Sign in')")
    # A cross-origin GET with an Authorization header: preflighted, then allowed.
    expect(page.locator(f"[data-dataset='{dataset_id}']")).to_be_visible()
    page.goto(f"{app_elsewhere}/app/jobs/{job_id}")
    expect(page.get_by_test_id("stream-status")).to_have_attribute(
        "data-status", "ended", timeout=300_000
    )
    assert _received(page) == job_entries(stack, job_id)  # EventSource across origins

    # From an origin CORS does not name, the browser refuses the same request.
    fetch = """async ([api, token]) => {
        try {
          await fetch(api + '/datasets', { headers: { Authorization: 'Bearer ' + token } });
          return 'allowed';
        } catch (e) { return 'refused'; }
      }"""
    assert page.evaluate(fetch, [stack.url, stack.token()]) == "allowed"
    page.route(
        "http://elsewhere.example/**",
        lambda route: route.fulfill(body="<p>elsewhere</p>", content_type="text/html"),
    )
    page.goto("http://elsewhere.example/")
    assert page.evaluate(fetch, [stack.url, stack.token()]) == "refused"
