"""The review app says which organisation the caller is in and shows only its datasets."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from modomo.api.auth import issue_token
from modomo.demo.run import app_link
from tests.browser.stack import Stack


def test_the_header_names_the_org_and_the_list_holds_only_its_datasets(
    stack: Stack, page: Page
) -> None:
    token = issue_token(stack.settings.jwt_secret, "carol", "reviewer", 3600, org="acme")
    with httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as acme:
        mine = acme.post("/datasets", json={"name": "acme's rooms"})
        assert mine.status_code == 201, mine.text
    with stack.client() as default_org:
        theirs = default_org.post("/datasets", json={"name": "the default org's rooms"})
        assert theirs.status_code == 201, theirs.text

    page.goto(app_link(stack.url, token, "/"))
    expect(page.locator(".whoami .org")).to_have_text("acme")
    expect(page.locator(".whoami")).to_contain_text("carol · reviewer")
    rows = page.get_by_test_id("datasets")
    expect(rows).to_contain_text("acme's rooms")
    expect(rows).not_to_contain_text("the default org's rooms")
